package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
)

func init() { register(newKeyCmd) }

func newKeyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "key",
		Short:   "Manage local key-encryption keys",
		Example: `  ppml key generate -o owner.key`,
	}
	c.AddCommand(newKeyGenerateCmd())
	for _, sub := range keySubcommands {
		c.AddCommand(sub())
	}
	return c
}

// keySubcommands are added to "ppml key" by other files (the key service's
// create, list and rotate).
var keySubcommands []func() *cobra.Command

func newKeyGenerateCmd() *cobra.Command {
	var out string
	var force, asJSON bool
	c := &cobra.Command{
		Use:   "generate -o FILE",
		Short: "Create a new local key-encryption key file (mode 0600)",
		Long: `Create a new 256-bit key-encryption key in FILE, readable only by you (mode 0600).
Files encrypted under it record its key id; keep the file secret and backed up:
without it they cannot be decrypted.`,
		Example: `  ppml key generate -o owner.key
  ppml key generate -o owner.key --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the key file with -o FILE")
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
	c.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// kmsKeyHook resolves kms:// key references once the key service client
// exists (set from that command group's init); nil until then.
var kmsKeyHook func(cmd *cobra.Command, ref string) (envelope.KeyWrapper, envelope.KeyResolver, error)

// loadKey turns a --key value into a wrapper and resolver: a local key file,
// or a kms:// reference through kmsKeyHook. Permission problems are warnings.
func loadKey(cmd *cobra.Command, spec string) (envelope.KeyWrapper, envelope.KeyResolver, error) {
	if spec == "" {
		return nil, nil, usageErrorf("give the key with --key FILE")
	}
	if strings.HasPrefix(spec, "kms://") {
		if kmsKeyHook == nil {
			return nil, nil, fmt.Errorf("key %s: this ppml has no key-service client; use a local key file", spec)
		}
		return kmsKeyHook(cmd, spec)
	}
	k, err := keyfile.Load(spec)
	if err != nil {
		return nil, nil, err
	}
	if k.Warning != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "ppml: warning:", k.Warning)
	}
	return k.LocalKey, k.LocalKey, nil
}
