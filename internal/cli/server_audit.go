package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/audit"
)

func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	return b, err
}

func newAuditCmd() *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Read, export and verify the key service's audit log", Example: "  ppml audit list --key alice.sales\n  ppml audit verify --file audit.jsonl --public-key audit.pub"}
	var kf, kf2, kf3 kmsFlags
	var key string
	var from uint64
	var limit int
	list := &cobra.Command{
		Use: "list [--key NAME]", Short: "Show who used a key, when, with which measurement and job",
		Example: "  ppml audit list --key alice.sales\n  ppml audit list --json   # admin: whole log", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			es, err := c.AuditList(cmd.Context(), key, from, limit)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, e := range es {
				fmt.Fprintf(&b, "%6d %s %-11s %s", e.Index, e.Time.Format("2006-01-02T15:04:05Z"), e.Type, e.Key)
				if e.KeyVersion != 0 {
					fmt.Fprintf(&b, "@%d", e.KeyVersion)
				}
				if e.Platform != "" {
					fmt.Fprintf(&b, " platform=%s measurement=%s job=%s", e.Platform, e.Measurement, e.JobDigest)
				}
				if e.Insecure {
					b.WriteString(" INSECURE")
				}
				if e.Rule != "" {
					fmt.Fprintf(&b, " rule=%s (%s)", e.Rule, e.Reason)
				} else if e.Reason != "" {
					fmt.Fprintf(&b, " %s", e.Reason)
				}
				fmt.Fprintf(&b, " actor=%s\n", e.Actor)
			}
			return printResult(cmd, kf.JSON, es, strings.TrimRight(b.String(), "\n"))
		},
	}
	kf.Add(list)
	list.Flags().StringVar(&key, "key", "", "key name (owners must give one)")
	list.Flags().Uint64Var(&from, "from", 0, "first entry index")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many entries")

	var out string
	export := &cobra.Command{
		Use: "export -o FILE", Short: "Export the whole audit log and the tree-head public key (admin)",
		Example: "  ppml audit export -o audit.jsonl   # also writes audit.jsonl.pub", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the output file with -o FILE")
			}
			c, err := kf2.Client(true)
			if err != nil {
				return err
			}
			b, err := c.AuditExport(cmd.Context())
			if err != nil {
				return err
			}
			pub, err := c.AuditPublicKey(cmd.Context())
			if err != nil {
				return err
			}
			if err := writeAuditExport(out, b, pub); err != nil {
				return err
			}
			return printResult(cmd, kf2.JSON, map[string]any{"file": out, "public_key": out + ".pub", "bytes": len(b)}, fmt.Sprintf("exported %d bytes to %s (tree-head key in %s.pub)", len(b), out, out))
		},
	}
	kf2.Add(export)
	export.Flags().StringVarP(&out, "output", "o", "", "file to write")

	var file, pubFile string
	verify := &cobra.Command{
		Use:   "verify [--file EXPORT --public-key PEM]",
		Short: "Verify the whole audit log: an exported copy offline, or live from the server",
		Long: `Check every entry, the Merkle tree, the hash chain and every signed tree head. With --file
the check is offline against --public-key (keep that key from a trusted source). Without
--file, the log is exported from --server (admin token) and checked against the server's key.
A tampered copy fails with the entry and line where it breaks.`,
		Example: "  ppml audit verify --file audit.jsonl --public-key audit.jsonl.pub\n  ppml audit verify --server https://kms:8443 --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var data, pubPEM []byte
			var err error
			if file != "" {
				if pubFile == "" {
					return usageErrorf("give the tree-head public key with --public-key FILE")
				}
				if data, err = os.ReadFile(file); err != nil {
					return err
				}
				if pubPEM, err = os.ReadFile(pubFile); err != nil {
					return err
				}
			} else {
				c, err := kf3.Client(true)
				if err != nil {
					return err
				}
				if data, err = c.AuditExport(cmd.Context()); err != nil {
					return err
				}
				if pubPEM, err = c.AuditPublicKey(cmd.Context()); err != nil {
					return err
				}
			}
			pub, err := audit.ParsePublicKey(pubPEM)
			if err != nil {
				return err
			}
			res, err := audit.VerifyExport(bytes.NewReader(data), audit.VerifyOptions{PublicKey: pub})
			var te *audit.TamperError
			if errors.As(err, &te) {
				if kf3.JSON {
					writeJSON(cmd.OutOrStdout(), map[string]any{"ok": false, "problems": te.Problems})
					return &silentExit{Code: ExitFailure}
				}
				return err
			}
			if err != nil {
				return err
			}
			return printResult(cmd, kf3.JSON, map[string]any{"ok": true, "entries": res.Entries, "tree_head": res.TreeHead},
				fmt.Sprintf("audit log verifies: %d entries, root %s", res.Entries, res.TreeHead.RootHash))
		},
	}
	kf3.Add(verify)
	verify.Flags().StringVar(&file, "file", "", "exported log to verify offline")
	verify.Flags().StringVar(&pubFile, "public-key", "", "tree-head public key PEM (with --file)")
	c.AddCommand(list, export, verify, newAuditProveCmd())
	return c
}

// writeAuditExport writes an exported log to out and the tree-head public
// key to out.pub, each atomically: a failed write leaves that file as it was.
func writeAuditExport(out string, log, pub []byte) error {
	if err := atomicfile.WriteFile(out, log, atomicfile.Options{Perm: 0o600, Overwrite: true}); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if err := atomicfile.WriteFile(out+".pub", pub, atomicfile.Options{Perm: 0o644, Overwrite: true}); err != nil {
		return fmt.Errorf("audit export: tree-head key: %w", err)
	}
	return nil
}

// saveTreeHead writes a verified tree head (JSON) atomically.
func saveTreeHead(path string, head any) error {
	var buf bytes.Buffer
	writeJSON(&buf, head)
	if err := atomicfile.WriteFile(path, buf.Bytes(), atomicfile.Options{Perm: 0o644, Overwrite: true}); err != nil {
		return fmt.Errorf("--save-head: %w", err)
	}
	return nil
}

func newAuditProveCmd() *cobra.Command {
	var kf kmsFlags
	var pubFile, headOut string
	c := &cobra.Command{
		Use:   "prove INDEX --public-key PEM",
		Short: "Fetch and verify a receipt: entry INDEX's inclusion proof in a signed tree head",
		Long: `Fetch entry INDEX with a freshly signed tree head and its RFC 6962 inclusion proof, and
verify both against --public-key (the tree-head key, kept from a trusted source). Owners can
prove entries about their own keys. --save-head keeps the tree head for later consistency checks.`,
		Example: "  ppml audit prove 42 --public-key audit.pub\n  ppml audit prove 42 --public-key audit.pub --json --save-head head.json",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var idx uint64
			if _, err := fmt.Sscan(args[0], &idx); err != nil {
				return usageErrorf("INDEX %q: want an entry index", args[0])
			}
			if pubFile == "" {
				return usageErrorf("give the tree-head public key with --public-key FILE")
			}
			pemb, err := os.ReadFile(pubFile)
			if err != nil {
				return err
			}
			pub, err := audit.ParsePublicKey(pemb)
			if err != nil {
				return err
			}
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			e, head, err := c.AuditReceipt(cmd.Context(), idx, pub)
			if err != nil {
				return err
			}
			if headOut != "" {
				if err := saveTreeHead(headOut, head); err != nil {
					return err
				}
			}
			return printResult(cmd, kf.JSON, map[string]any{"entry": e, "tree_head": head, "verified": true},
				fmt.Sprintf("entry %d (%s %s) is in the signed tree of %d entries, root %s", e.Index, e.Type, e.Key, head.Size, head.RootHash))
		},
	}
	kf.Add(c)
	c.Flags().StringVar(&pubFile, "public-key", "", "tree-head public key PEM")
	c.Flags().StringVar(&headOut, "save-head", "", "write the verified tree head (JSON) to this file")
	return c
}
