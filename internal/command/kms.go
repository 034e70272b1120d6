package command

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/kms/client"
)

// KMSFlags are the key-service connection flags every client command
// shares, and --json.
type KMSFlags struct {
	Server, Token, Fingerprint, CAFile string
	JSON                               bool
}

// Add adds the flags to c.
func (k *KMSFlags) Add(c *cobra.Command) {
	k.AddConnection(c, "key service URL https://HOST:PORT (env PPML_SERVER)")
	c.Flags().BoolVar(&k.JSON, "json", false, "print the result as JSON")
}

// AddConnection adds the connection flags only (--server, --token,
// --server-fingerprint, --ca-file), --server with the given help.
func (k *KMSFlags) AddConnection(c *cobra.Command, serverHelp string) {
	f := c.Flags()
	f.StringVar(&k.Server, "server", "", serverHelp)
	f.StringVar(&k.Token, "token", "", "API token (env PPML_TOKEN)")
	f.StringVar(&k.Fingerprint, "server-fingerprint", "", "pin the server certificate's SHA-256 (env PPML_SERVER_FINGERPRINT)")
	f.StringVar(&k.CAFile, "ca-file", "", "trust these CAs for the server certificate (env PPML_CA_FILE)")
}

// Client connects to the key service the flags (or PPML_SERVER, PPML_TOKEN,
// PPML_SERVER_FINGERPRINT, PPML_CA_FILE) name.
func (k *KMSFlags) Client(needToken bool) (*client.Client, error) {
	server := EnvOr(k.Server, "PPML_SERVER")
	if server == "" {
		return nil, Usagef("give the key service with --server https://HOST:PORT or PPML_SERVER")
	}
	tok := EnvOr(k.Token, "PPML_TOKEN")
	if needToken && tok == "" {
		return nil, Usagef("give an API token with --token or PPML_TOKEN")
	}
	return client.New(server, tok, client.Options{Fingerprint: EnvOr(k.Fingerprint, "PPML_SERVER_FINGERPRINT"), CAFile: EnvOr(k.CAFile, "PPML_CA_FILE")})
}

// LoadKey turns a --key value into a wrapper and resolver: a local key file
// or a recipient private key file (which encrypts to its public half), or a
// kms:// reference (the server is the reference's host and port, the
// owner's token PPML_TOKEN). Permission problems of a key file are
// warnings on stderr.
func LoadKey(cmd *cobra.Command, spec string) (envelope.KeyWrapper, envelope.KeyResolver, error) {
	return LoadKeyWith(cmd, spec, nil)
}

// LoadKeyWith is LoadKey with the connection flags k (nil: environment
// variables only) for kms:// keys.
func LoadKeyWith(cmd *cobra.Command, spec string, k *KMSFlags) (envelope.KeyWrapper, envelope.KeyResolver, error) {
	if spec == "" {
		return nil, nil, Usagef("give the key with --key FILE")
	}
	if strings.HasPrefix(spec, "kms://") {
		ref, err := envelope.ParseKeyRef(spec)
		if err != nil {
			return nil, nil, Usagef("--key: %v", err)
		}
		key, err := KMSKey(cmd, ref, k, "--key "+spec)
		if err != nil {
			return nil, nil, err
		}
		return key, key, nil
	}
	if envelope.LooksLikeRecipient(spec) {
		return nil, nil, Usagef("--key takes a key file; %s… is a public key: give it with --recipient", spec[:min(len(spec), 12)])
	}
	kf, err := keyfile.LoadAny(spec)
	if err != nil {
		return nil, nil, err
	}
	if kf.Warning != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", cmd.Root().Name(), kf.Warning)
	}
	return kf.KeyWrapper(), kf.KeyResolver(), nil
}

// KMSKey reaches the key service of a kms:// reference, with the token of
// --token or PPML_TOKEN; what names the reference as the user gave it, for
// errors. The reference's host and port say which key service holds the
// key (a file's header records them), so that is where KMSKey connects:
//   - an explicit --server URL connects there instead, on purpose (a tunnel
//     or port-forward to that same service; the TLS pin or CA still decides
//     whether the server is trusted);
//   - PPML_SERVER, set for the whole shell and easily forgotten, never
//     redirects a reference: it is used when it names the reference's
//     host and port, and a different one is refused (exit 2), naming both.
func KMSKey(cmd *cobra.Command, ref envelope.KeyRef, k *KMSFlags, what string) (*client.EnvelopeKey, error) {
	if k == nil {
		k = &KMSFlags{}
	}
	tok := EnvOr(k.Token, "PPML_TOKEN")
	if tok == "" {
		return nil, Usagef("%s needs an API token of the key service: give it with --token or PPML_TOKEN", what)
	}
	server, err := ServerFor(ref, k.Server, os.Getenv("PPML_SERVER"), what)
	if err != nil {
		return nil, err
	}
	c, err := client.New(server, tok, client.Options{Fingerprint: EnvOr(k.Fingerprint, "PPML_SERVER_FINGERPRINT"), CAFile: EnvOr(k.CAFile, "PPML_CA_FILE")})
	if err != nil {
		return nil, err
	}
	return &client.EnvelopeKey{Client: c, Ref: ref, Ctx: cmd.Context()}, nil
}

// ServerFor is the URL KMSKey connects to for ref: flag (--server) when
// given, else the reference's https://HOST:PORT; env (PPML_SERVER) must
// then be empty or name the same host and port.
func ServerFor(ref envelope.KeyRef, flag, env, what string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	own := client.ServerURL(ref.Host, ref.Port)
	if env == "" || SameServer(env, ref) {
		return own, nil
	}
	return "", Usagef("%s is a key of the key service at %s, but PPML_SERVER is %s: the reference says which "+
		"key service holds the key, and PPML_SERVER does not redirect it. Unset PPML_SERVER (or set it to %s), "+
		"or give --server URL to reach that key service at another address on purpose (a tunnel or port-forward)",
		what, strings.TrimPrefix(own, "https://"), env, own)
}

// SameServer reports whether the URL u names ref's key service: https, the
// same host (case-insensitively) and the same port (8443 when the reference
// has none, 443 when the URL has none).
func SameServer(u string, ref envelope.KeyRef) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "https" || (p.Path != "" && p.Path != "/") {
		return false
	}
	port := p.Port()
	if port == "" {
		port = "443"
	}
	want := ref.Port
	if want == 0 {
		want = client.DefaultPort
	}
	return strings.EqualFold(p.Hostname(), ref.Host) && port == strconv.Itoa(want)
}

// HeaderResolver resolves the key a file's header names, for decrypt
// without --key: kms:// keys through the key service (k's flags or the
// PPML_* variables); local and recipient keys need --key.
func HeaderResolver(cmd *cobra.Command, k *KMSFlags) envelope.KeyResolver {
	return headerResolver{cmd: cmd, k: k}
}

type headerResolver struct {
	cmd *cobra.Command
	k   *KMSFlags
}

func (h headerResolver) UnwrapDataKey(ref envelope.KeyRef, wrapped, aad []byte) ([]byte, error) {
	if ref.Scheme != envelope.SchemeKMS {
		return nil, Usagef("the file is encrypted under %s: give its key file with --key FILE", ref.Describe())
	}
	key, err := KMSKey(h.cmd, ref, h.k, ref.String())
	if err != nil {
		return nil, err
	}
	return key.UnwrapDataKey(ref, wrapped, aad)
}
