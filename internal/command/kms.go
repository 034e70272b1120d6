package command

import (
	"fmt"
	"os"
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
	f := c.Flags()
	f.StringVar(&k.Server, "server", "", "key service URL https://HOST:PORT (env PPML_SERVER)")
	f.StringVar(&k.Token, "token", "", "API token (env PPML_TOKEN)")
	f.StringVar(&k.Fingerprint, "server-fingerprint", "", "pin the server certificate's SHA-256 (env PPML_SERVER_FINGERPRINT)")
	f.StringVar(&k.CAFile, "ca-file", "", "trust these CAs for the server certificate (env PPML_CA_FILE)")
	f.BoolVar(&k.JSON, "json", false, "print the result as JSON")
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
	if spec == "" {
		return nil, nil, Usagef("give the key with --key FILE")
	}
	if strings.HasPrefix(spec, "kms://") {
		return kmsEnvelopeKey(cmd, spec)
	}
	if envelope.LooksLikeRecipient(spec) {
		return nil, nil, Usagef("--key takes a key file; %s… is a public key: give it with --recipient", spec[:min(len(spec), 12)])
	}
	k, err := keyfile.LoadAny(spec)
	if err != nil {
		return nil, nil, err
	}
	if k.Warning != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", cmd.Root().Name(), k.Warning)
	}
	return k.KeyWrapper(), k.KeyResolver(), nil
}

// kmsEnvelopeKey is --key kms://…: the server is the reference's host and
// port, the token from PPML_TOKEN.
func kmsEnvelopeKey(cmd *cobra.Command, spec string) (envelope.KeyWrapper, envelope.KeyResolver, error) {
	ref, err := envelope.ParseKeyRef(spec)
	if err != nil {
		return nil, nil, Usagef("--key: %v", err)
	}
	tok := os.Getenv("PPML_TOKEN")
	if tok == "" {
		return nil, nil, Usagef("--key %s needs an owner API token in PPML_TOKEN", spec)
	}
	c, err := client.New(client.ServerURL(ref.Host, ref.Port), tok, client.Options{Fingerprint: os.Getenv("PPML_SERVER_FINGERPRINT"), CAFile: os.Getenv("PPML_CA_FILE")})
	if err != nil {
		return nil, nil, err
	}
	k := &client.EnvelopeKey{Client: c, Ref: ref, Ctx: cmd.Context()}
	return k, k, nil
}
