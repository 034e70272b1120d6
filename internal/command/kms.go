package command

import (
	"fmt"
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

// KMSKey reaches the key service of a kms:// reference: at the
// reference's host and port unless --server (or PPML_SERVER) names another
// address for it, with the token of --token or PPML_TOKEN. what names the
// reference as the user gave it, for errors.
func KMSKey(cmd *cobra.Command, ref envelope.KeyRef, k *KMSFlags, what string) (*client.EnvelopeKey, error) {
	if k == nil {
		k = &KMSFlags{}
	}
	tok := EnvOr(k.Token, "PPML_TOKEN")
	if tok == "" {
		return nil, Usagef("%s needs an API token of the key service: give it with --token or PPML_TOKEN", what)
	}
	server := EnvOr(k.Server, "PPML_SERVER")
	if server == "" {
		server = client.ServerURL(ref.Host, ref.Port)
	}
	c, err := client.New(server, tok, client.Options{Fingerprint: EnvOr(k.Fingerprint, "PPML_SERVER_FINGERPRINT"), CAFile: EnvOr(k.CAFile, "PPML_CA_FILE")})
	if err != nil {
		return nil, err
	}
	return &client.EnvelopeKey{Client: c, Ref: ref, Ctx: cmd.Context()}, nil
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
