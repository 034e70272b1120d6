package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
)

func init() { register(newKeyCmd) }

func newKeyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "Manage keys: local key files, recipient key pairs and key-service keys",
		Example: `  ppml key generate -o owner.key
  ppml key generate --recipient -o owner.key`,
	}
	c.AddCommand(newKeyGenerateCmd(), newKeyPublicCmd())
	for _, sub := range keySubcommands {
		c.AddCommand(sub())
	}
	return c
}

// keySubcommands are added to "ppml key" by other files (the key service's
// create, list and rotate).
var keySubcommands []func() *cobra.Command

func newKeyGenerateCmd() *cobra.Command {
	var out, pubOut, kem string
	var force, asJSON, recipient bool
	c := &cobra.Command{
		Use:   "generate -o FILE [--recipient [--public FILE] [--kem KEM]]",
		Short: "Create a new local key file, or with --recipient a public/private key pair",
		Long: `Create a new 256-bit key-encryption key in FILE, readable only by you (mode 0600).
Files encrypted under it record its key id; keep the file secret and backed up:
without it they cannot be decrypted.

With --recipient, create a key pair instead, as age does: the private key in FILE (mode
0600) and the public key in a text file safe to share (--public, default FILE with .key
replaced by .pub; mode 0644). Anyone with the public key can encrypt files to you
(ppml encrypt --recipient owner.pub) but cannot decrypt them; only the private key can
(ppml decrypt --key owner.key). --kem picks the key type: mlkem768x25519 (the default:
ML-KEM-768 + X25519, safe against a future quantum computer; public key about 2 KB) or
x25519 (a 63-character public key, not quantum-safe).`,
		Example: `  ppml key generate -o owner.key
  ppml key generate -o owner.key --json
  ppml key generate --recipient -o owner.key               # also writes owner.pub
  ppml key generate --recipient --kem x25519 -o owner.key --public owner.pub`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the key file with -o FILE")
			}
			if !recipient && (pubOut != "" || cmd.Flags().Changed("kem")) {
				return usageErrorf("--public and --kem go with --recipient")
			}
			if recipient {
				return generateRecipient(cmd, out, pubOut, kem, force, asJSON)
			}
			k, err := keyfile.Generate(out, force)
			if err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%w (use --force to replace it; files encrypted under the old key become unreadable without it)", err)
				}
				return fmt.Errorf("generate key: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"path": out, "key_id": k.ID(), "key_ref": k.Ref().String()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "generated key %s in %s (mode 0600)\n", k.ID(), out)
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "key file to create")
	c.Flags().BoolVar(&force, "force", false, "replace existing key files")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.Flags().BoolVar(&recipient, "recipient", false, "create a public/private key pair (files encrypted to the public key open only with the private key)")
	c.Flags().StringVar(&pubOut, "public", "", "with --recipient: public key file to create (default: FILE with .key replaced by .pub)")
	c.Flags().StringVar(&kem, "kem", envelope.KEMMLKEM768X25519, "with --recipient: key type, mlkem768x25519 or x25519")
	return c
}

// publicKeyPath is the default public key file for a private key file.
func publicKeyPath(priv string) string {
	if base, ok := strings.CutSuffix(priv, ".key"); ok && base != "" && !strings.HasSuffix(base, "/") {
		return base + ".pub"
	}
	return priv + ".pub"
}

func generateRecipient(cmd *cobra.Command, out, pubOut, kem string, force, asJSON bool) error {
	if kem != envelope.KEMMLKEM768X25519 && kem != envelope.KEMX25519 {
		return usageErrorf("--kem %q: want mlkem768x25519 or x25519", kem)
	}
	if pubOut == "" {
		pubOut = publicKeyPath(out)
	}
	if filepath.Clean(pubOut) == filepath.Clean(out) {
		return usageErrorf("the public key file (--public) must differ from the private key file (-o)")
	}
	// Check both outputs before writing either, so a refused public key
	// file does not leave a private key behind.
	if !force {
		for _, p := range []string{out, pubOut} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("output %s already exists (use --force to replace it; files encrypted to the old key become unreadable without its private key)", p)
			}
		}
	}
	id, err := keyfile.GenerateIdentity(out, kem, force)
	if err != nil {
		return fmt.Errorf("generate key pair: %w", err)
	}
	if err := keyfile.WriteRecipient(pubOut, id.Recipient(), force); err != nil {
		return fmt.Errorf("write public key (the private key is in %s; ppml key public %s prints it again): %w", out, out, err)
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), map[string]string{"path": out, "public_key_path": pubOut, "key_id": id.ID(),
			"key_ref": id.Ref().String(), "kem": kem, "public_key": id.Recipient().String()})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "generated %s key pair %s: private key in %s (mode 0600, keep it secret), public key in %s (share it)\n",
		envelope.KEMDisplay(kem), id.ID(), out, pubOut)
	return nil
}

func newKeyPublicCmd() *cobra.Command {
	var out string
	var force bool
	c := &cobra.Command{
		Use:   "public KEYFILE",
		Short: "Print the public key of a recipient private key file",
		Long: `Print the public key (the text form, ppml1… or ppmlpq1…) of the recipient private key in
KEYFILE, to stdout or with -o to a file (mode 0644). Use it to hand out the public key again.`,
		Example: `  ppml key public owner.key
  ppml key public owner.key -o owner.pub --force`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := keyfile.LoadAny(args[0])
			if err != nil {
				return err
			}
			if a.Identity == nil {
				return fmt.Errorf("key file %s holds a local key, which has no public key (make a key pair with ppml key generate --recipient)", args[0])
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(keyfile.MarshalRecipient(a.Identity.Recipient()))
				return err
			}
			if err := keyfile.WriteRecipient(out, a.Identity.Recipient(), force); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%w (use --force to replace it)", err)
				}
				return err
			}
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write the public key to this file instead of stdout")
	c.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return c
}

// loadRecipient turns a --recipient value into a key wrapper: a public key
// in its text form, a public key file, or (with the key service) the public
// half of a kms:// recipient key.
func loadRecipient(cmd *cobra.Command, spec string, k *kmsFlags) (envelope.KeyWrapper, error) {
	switch {
	case strings.HasPrefix(spec, "kms://"):
		return kmsRecipientKey(cmd, spec, k)
	case envelope.LooksLikeRecipient(spec):
		r, err := envelope.ParseRecipient(spec)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--recipient: %w", err)}
		}
		return r, nil
	}
	r, err := keyfile.LoadRecipient(spec)
	if err != nil {
		return nil, err
	}
	return r, nil
}
