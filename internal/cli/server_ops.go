package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/seal"
)

func init() {
	keySubcommands = append(keySubcommands, newKMSKeyDisableCmd, newKMSKeyEnableCmd, newKMSKeyDestroyCmd)
}

// readShares reads unseal shares: on a terminal, n prompts on stderr with
// the input hidden (n = 0: one); otherwise one share per non-empty line of
// standard input. Shares never come from the command line in the
// recommended path (argv shows in ps and shell history).
func readShares(cmd *cobra.Command, n int) ([]string, error) {
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if n == 0 {
			n = 1
		}
		var out []string
		for i := range n {
			if n == 1 {
				fmt.Fprint(cmd.ErrOrStderr(), "Unseal share (input hidden): ")
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "Unseal share %d of %d (input hidden): ", i+1, n)
			}
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return nil, fmt.Errorf("read the share: %w", err)
			}
			if s := strings.TrimSpace(string(b)); s != "" {
				out = append(out, s)
			}
			clear(b)
		}
		return out, nil
	}
	var out []string
	sc := bufio.NewScanner(io.LimitReader(cmd.InOrStdin(), 1<<20))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func newServerStatusCmd() *cobra.Command {
	var kf kmsFlags
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether the key service is sealed, its seal, build, state version and audit log size",
		Long: `Show the key service's status. It needs no token and works on a sealed server: seal
type, sealed or not, unseal shares given so far and needed; once unsealed, the store's id,
its state version (write transactions so far) and time of last write, and the audit log's size.`,
		Example: `  ppml server status --server https://kms:8443 --server-fingerprint 3fa4…
  ppml server status --json | jq .sealed`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(false)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return printResult(cmd, kf.JSON, st, statusText(st))
		},
	}
	kf.Add(c)
	return c
}

func statusText(st *api.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Seal type      %s\n", st.Seal)
	fmt.Fprintf(&b, "Sealed         %v\n", st.Sealed)
	if st.Threshold > 0 {
		if st.Sealed {
			fmt.Fprintf(&b, "Unseal shares  %d of %d given (the split has %d)\n", st.Shares, st.Threshold, st.SharesTotal)
		} else {
			fmt.Fprintf(&b, "Unseal shares  %d of %d needed\n", st.Threshold, st.SharesTotal)
		}
	}
	fmt.Fprintf(&b, "Version        %s\n", st.Version)
	if !st.Sealed {
		fmt.Fprintf(&b, "Store          %s, state version %d, last written %s\n", st.StoreID, st.StateVersion, st.StateTime.Format(time.RFC3339))
		fmt.Fprintf(&b, "Audit log      %d entries", st.AuditSize)
	}
	return strings.TrimRight(b.String(), "\n")
}

func newServerRestoreCmd() *cobra.Command {
	var cfg kms.RestoreConfig
	var shares []string
	var asJSON bool
	c := &cobra.Command{
		Use:   "restore --data-dir DIR BACKUP",
		Short: "Replace a stopped key service's database with a backup, and record that on its audit log",
		Long: `Restore a database backup (ppml server backup) into the data directory of a stopped key
service. The root key is recovered with the directory's seal (seal.json): the file seal reads
the key file, the Shamir seal asks for the unseal shares (hidden on a terminal, else one per
line on standard input), the TEE seal derives it inside the enclave. The backup must open under
that root key and pass the state check; then a "restore" entry naming the backup (SHA-256,
store id, state version and time of its last write), the database it replaces and --operator
is appended to the restored audit log, the replaced database is kept as
ppml.db.before-restore-TIME, and the state witness is updated. A backup copied over ppml.db by
hand is refused at start: restoring is always this explicit, recorded action.`,
		Example: `  ppml server restore --data-dir /var/lib/ppml /backup/ppml-2026-11-21.db
  ppml server restore --data-dir kms --operator carol backup.db < shares.txt`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.DataDir == "" {
				return usageErrorf("give the stopped server's data directory with --data-dir DIR")
			}
			cfg.Backup = args[0]
			if cfg.Operator == "" {
				if u, err := user.Current(); err == nil {
					cfg.Operator = u.Username
				}
			}
			if cfg.Operator == "" {
				return usageErrorf("give who restores with --operator NAME (it is recorded on the audit log)")
			}
			st, err := seal.LoadState(cfg.DataDir)
			if err != nil {
				if errors.Is(err, seal.ErrNoState) {
					return fmt.Errorf("%s has no %s: copy the backup's %s there first", cfg.DataDir, seal.StateFile, seal.StateFile)
				}
				return err
			}
			if st.Type == seal.TypeShamir && len(shares) == 0 {
				if shares, err = readShares(cmd, st.Threshold); err != nil {
					return err
				}
			}
			cfg.Shares = shares
			res, err := kms.Restore(cfg)
			if err != nil {
				return err
			}
			text := fmt.Sprintf("restored %s (store %s, state version %d, last written %s) into %s\nrecorded as audit entry %d by operator %s",
				cfg.Backup, res.Backup.StoreID, res.Backup.Version, res.Backup.Time.Format(time.RFC3339), cfg.DataDir, res.BackupAuditSize, cfg.Operator)
			if res.KeptAs != "" {
				text += "\nthe replaced database is kept as " + res.KeptAs
			}
			text += "\nowners who kept a tree head from after the backup will see the log fork at the restore entry: tell them"
			return printResult(cmd, asJSON, res, text)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "the stopped key service's data directory")
	f.StringVar(&cfg.Operator, "operator", "", "who restores, recorded on the audit log (default: your user name)")
	f.StringVar(&cfg.SealKeyFile, "seal-key-file", "", "file seal: root key file (default DATA_DIR/root.key)")
	f.StringVar(&cfg.TEEKeyName, "seal-tee-key", "", "tee seal: sealing key name (_sgx_mrenclave or _sgx_mrsigner)")
	f.StringArrayVar(&shares, "share", nil, "an unseal share (visible in ps: prefer the prompt or standard input); repeatable")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func newTokenRenewCmd() *cobra.Command {
	var kf kmsFlags
	var ttl string
	c := &cobra.Command{
		Use:   "renew [ID]",
		Short: "Extend an API token's expiry: your own token, or any token by id (admin)",
		Long: `Extend an API token's expiry to now plus its TTL (or --ttl). Without ID the token in use
renews itself; an admin renews any token by ID. Expired and revoked tokens cannot be renewed.`,
		Example: `  ppml token renew
  ppml token renew 546318daa79c2a18 --ttl 2160h`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			t, err := c.RenewToken(cmd.Context(), id, ttl)
			if err != nil {
				return err
			}
			return printResult(cmd, kf.JSON, t, fmt.Sprintf("token %s renewed: expires %s", t.ID, t.Expires.Format(time.RFC3339)))
		},
	}
	kf.Add(c)
	c.Flags().StringVar(&ttl, "ttl", "", "new lifetime from now, e.g. 720h (default: the token's own)")
	return c
}

func tokenExpiry(t *api.TokenInfo) string {
	if t.Expires.IsZero() {
		return "never (issued before tokens expired: revoke and reissue)"
	}
	return t.Expires.Format(time.RFC3339)
}

func newKMSKeyVersionCmd(op, short, long, example string, run func(cmd *cobra.Command, kf *kmsFlags, name string, v uint32) (*api.Key, error)) *cobra.Command {
	var kf kmsFlags
	var version uint32
	c := &cobra.Command{
		Use: op + " NAME --version N", Short: short, Long: long, Example: example, Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version == 0 {
				return usageErrorf("give the key version with --version N (ppml key list shows them)")
			}
			k, err := run(cmd, &kf, args[0], version)
			if err != nil {
				return err
			}
			var states []string
			for _, v := range k.Versions {
				states = append(states, fmt.Sprintf("v%d %s", v.Version, v.State))
			}
			done := map[string]string{"disable": "disabled", "enable": "enabled", "destroy": "destroyed"}[op]
			return printResult(cmd, kf.JSON, k, fmt.Sprintf("%s version %d %s; versions: %s", k.Name, version, done, strings.Join(states, ", ")))
		},
	}
	kf.Add(c)
	c.Flags().Uint32Var(&version, "version", 0, "the key version")
	return c
}

func newKMSKeyDisableCmd() *cobra.Command {
	return newKMSKeyVersionCmd("disable", "Disable a key-service key version: it wraps, unwraps and releases nothing until enabled (owner)",
		"Disable one version of a key: files under it cannot be decrypted or released to any TEE, and\nno new data key is wrapped under it, until it is enabled again. Audited on the key's trail.",
		"  ppml key disable alice/sales --version 1",
		func(cmd *cobra.Command, kf *kmsFlags, name string, v uint32) (*api.Key, error) {
			c, err := kf.Client(true)
			if err != nil {
				return nil, err
			}
			return c.DisableKeyVersion(cmd.Context(), name, v)
		})
}

func newKMSKeyEnableCmd() *cobra.Command {
	return newKMSKeyVersionCmd("enable", "Enable a disabled key-service key version again (owner)", "Enable a disabled key version again. Audited on the key's trail.",
		"  ppml key enable alice/sales --version 1",
		func(cmd *cobra.Command, kf *kmsFlags, name string, v uint32) (*api.Key, error) {
			c, err := kf.Client(true)
			if err != nil {
				return nil, err
			}
			return c.EnableKeyVersion(cmd.Context(), name, v)
		})
}

func newKMSKeyDestroyCmd() *cobra.Command {
	var yes bool
	c := newKMSKeyVersionCmd("destroy", "Destroy a disabled key-service key version: files under it become unreadable for good (owner)",
		`Destroy a disabled key version (crypto-shredding): its key material is erased from the key
service's database, which is compacted so that no copy stays in its free space or in backups
taken afterwards (backups taken before still hold it: destroy them too). Every file encrypted
under that version becomes unreadable, for everyone, for good; the version number is never
reused. Disable the version first, and give --yes. Audited on the key's trail.`,
		"  ppml key disable alice/sales --version 1\n  ppml key destroy alice/sales --version 1 --yes",
		func(cmd *cobra.Command, kf *kmsFlags, name string, v uint32) (*api.Key, error) {
			if !yes {
				return nil, usageErrorf("destroying key %s version %d makes every file under it unreadable for good: add --yes", name, v)
			}
			c, err := kf.Client(true)
			if err != nil {
				return nil, err
			}
			return c.DestroyKeyVersion(cmd.Context(), name, v)
		})
	c.Flags().BoolVar(&yes, "yes", false, "confirm: the version's key material is erased for good")
	return c
}
