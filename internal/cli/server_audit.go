package cli

import (
	"github.com/ppml/ppml/internal/command"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/audit"
)

func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	return b, err
}

func newAuditCmd() *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Read, export and verify the key service's audit log",
		Example: "  ppml audit list --key alice/sales\n  ppml audit head -o head.json\n  ppml audit verify --key alice/sales --trusted-head head.json"}
	c.AddCommand(newAuditListCmd(), newAuditExportCmd(), newAuditVerifyCmd(), newAuditProveCmd(), newAuditHeadCmd(), newAuditPublicKeyCmd())
	return c
}

// entryLine is one entry as `ppml audit list` shows it; every field that
// comes from the log is escaped (termSafe): entries can quote what a
// runner sent.
func entryLine(e *audit.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6d %s %-11s %s", e.Index, e.Time.UTC().Format("2006-01-02T15:04:05Z"), command.TermSafe(string(e.Type), ""), command.TermSafe(e.Key, ""))
	if e.Key == "" && e.Tenant != "" {
		b.WriteString("tenant " + command.TermSafe(e.Tenant, ""))
	}
	if e.KeyVersion != 0 {
		fmt.Fprintf(&b, "@%d", e.KeyVersion)
	}
	if e.Platform != "" {
		fmt.Fprintf(&b, " platform=%s measurement=%s job=%s", command.TermSafe(e.Platform, ""), e.Measurement, e.JobDigest)
	}
	if e.Insecure {
		b.WriteString(" INSECURE")
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, " rule=%s", command.TermSafe(e.Rule, ""))
		if e.Field != "" {
			fmt.Fprintf(&b, " field=%s", command.TermSafe(e.Field, ""))
		}
		fmt.Fprintf(&b, " (%s)", command.TermSafe(e.Reason, ""))
	} else if e.Reason != "" {
		fmt.Fprintf(&b, " %s", command.TermSafe(e.Reason, ""))
	}
	fmt.Fprintf(&b, " actor=%s", command.TermSafe(e.Actor, ""))
	return b.String()
}

func newAuditListCmd() *cobra.Command {
	var kf kmsFlags
	var key, tenant string
	var from uint64
	var limit int
	c := &cobra.Command{
		Use:   "list [--key NAME | --tenant NAME]",
		Short: "Show who used a key, when, with which measurement and job; or a tenant's own trail",
		Long: `Without --key, an owner sees the trail of its own tenant: every token issued for it (by
anyone), what administrators did to it, and summaries of its tokens' refused requests. An
admin sees the whole log, or a tenant's trail with --tenant. Text from the log is printed
with control characters escaped.`,
		Example: "  ppml audit list --key alice/sales\n  ppml audit list                      # owner: your tenant's trail\n  ppml audit list --json               # admin: the whole log",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key != "" && tenant != "" {
				return usageErrorf("give --key or --tenant, not both")
			}
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			var es []audit.Entry
			if tenant != "" {
				es, err = c.AuditTenantList(cmd.Context(), tenant, from, limit)
			} else {
				es, err = c.AuditList(cmd.Context(), key, from, limit)
			}
			if err != nil {
				return err
			}
			var b strings.Builder
			for i := range es {
				b.WriteString(entryLine(&es[i]) + "\n")
			}
			return printResult(cmd, kf.JSON, es, strings.TrimRight(b.String(), "\n"))
		},
	}
	kf.Add(c)
	c.Flags().StringVar(&key, "key", "", "key name (without it: your tenant's trail; admin: the whole log)")
	c.Flags().StringVar(&tenant, "tenant", "", "a tenant's own trail (admin; owners: their own)")
	c.Flags().Uint64Var(&from, "from", 0, "first entry index")
	c.Flags().IntVar(&limit, "limit", 1000, "at most this many entries")
	positive(c, "limit")
	return c
}

// readHeads reads tree heads saved by `ppml audit head` (or prove --save-head).
func readHeads(paths []string) ([]*audit.TreeHead, error) {
	var out []*audit.TreeHead
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--trusted-head: %w", err)
		}
		var h audit.TreeHead
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil || len(h.RootHash) == 0 {
			return nil, fmt.Errorf("--trusted-head %s: not a saved tree head (ppml audit head -o FILE writes one): %v", p, err)
		}
		out = append(out, &h)
	}
	return out, nil
}

func sizes(hs []*audit.TreeHead) []uint64 {
	var out []uint64
	for _, h := range hs {
		out = append(out, h.Size)
	}
	return out
}

func newAuditExportCmd() *cobra.Command {
	var kf kmsFlags
	var out, tenant string
	var force bool
	var keys, trusted []string
	c := &cobra.Command{
		Use:   "export -o FILE [--key NAME]... [--trusted-head FILE]...",
		Short: "Export the whole audit log (admin), or your trail with the proof that it is complete",
		Long: `Without --key, export the whole log (admin). With --key (repeatable) or --tenant, export
a trail: every entry about those keys and about their tenant, with the signed tree head's
commitment to each trail's newest entry, so that ppml audit verify --file can prove offline
that nothing was left out; each --trusted-head (a head you saved earlier) adds the proof that
the log still extends it. The tree-head public key is written next to the file (FILE.pub):
compare its fingerprint with one you got from a trusted channel.`,
		Example: "  ppml audit export -o audit.jsonl   # admin; also writes audit.jsonl.pub\n  ppml audit export -o sales.trail --key alice/sales --trusted-head head.json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the output file with -o FILE")
			}
			for _, p := range []string{out, out + ".pub"} {
				if err := checkOutput(p, force); err != nil {
					return err
				}
			}
			heads, err := readHeads(trusted)
			if err != nil {
				return err
			}
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			var b []byte
			if len(keys) > 0 || tenant != "" {
				b, err = c.AuditTrail(cmd.Context(), keys, tenant, sizes(heads))
			} else {
				if len(heads) > 0 {
					return usageErrorf("--trusted-head goes with --key or --tenant (a whole export is checked against heads by ppml audit verify)")
				}
				b, err = c.AuditExport(cmd.Context())
			}
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
			return printResult(cmd, kf.JSON, map[string]any{"file": out, "public_key": out + ".pub", "bytes": len(b)}, fmt.Sprintf("exported %d bytes to %s (tree-head key in %s.pub)", len(b), out, out))
		},
	}
	kf.Add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "file to write")
	c.Flags().BoolVar(&force, "force", false, "replace existing files")
	c.Flags().StringArrayVar(&keys, "key", nil, "export the trail of this key (repeatable)")
	c.Flags().StringVar(&tenant, "tenant", "", "export this tenant's own trail (owners: their own)")
	c.Flags().StringArrayVar(&trusted, "trusted-head", nil, "a tree head saved earlier: include the proof that the log extends it (repeatable)")
	return c
}

// exportFormat reads the format name of an export's header line.
func exportFormat(data []byte) string {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	var h struct {
		Format string `json:"format"`
	}
	json.Unmarshal(line, &h)
	return h.Format
}

func newAuditVerifyCmd() *cobra.Command {
	var kf kmsFlags
	var file, pubFile, tenant string
	var keys, trusted []string
	c := &cobra.Command{
		Use:   "verify [--file EXPORT --public-key PEM] [--key NAME]... [--trusted-head FILE]...",
		Short: "Verify the audit log or your trail: an export offline, or live from the server",
		Long: `Check every entry, the Merkle tree, the hash chains and every signed tree head. With --file
the check is offline against --public-key (keep that key from a trusted source): a whole-log
export, or a trail export (ppml audit export --key), which must prove that it holds every entry
about each --key up to its signed tree head. Without --file, the log (admin) or with --key your
trail is fetched from --server and checked against the server's key.

Each --trusted-head is a tree head you saved earlier (ppml audit head -o FILE): the log must
extend it. A log shorter than a saved head (a key service restored from a backup) or one that
differs from it (a forked history) fails. A tampered copy fails with the entry and line where
it breaks. On success, verify prints the size and signing time of the head it verified.`,
		Example: "  ppml audit verify --file audit.jsonl --public-key audit.jsonl.pub\n" +
			"  ppml audit verify --file sales.trail --public-key audit.pub --key alice/sales --trusted-head head.json\n" +
			"  ppml audit verify --key alice/sales --trusted-head head.json   # live, owner",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			heads, err := readHeads(trusted)
			if err != nil {
				return err
			}
			var data, pubPEM []byte
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
				c, err := kf.Client(true)
				if err != nil {
					return err
				}
				if len(keys) > 0 || tenant != "" {
					data, err = c.AuditTrail(cmd.Context(), keys, tenant, sizes(heads))
				} else {
					data, err = c.AuditExport(cmd.Context())
				}
				if err != nil {
					return err
				}
				if pubFile != "" {
					pubPEM, err = os.ReadFile(pubFile)
				} else {
					pubPEM, err = c.AuditPublicKey(cmd.Context())
				}
				if err != nil {
					return err
				}
			}
			pub, err := audit.ParsePublicKey(pubPEM)
			if err != nil {
				return err
			}
			var res *audit.Result
			trail := exportFormat(data) == audit.TrailFormat
			if trail {
				res, err = audit.VerifyTrail(bytes.NewReader(data), audit.TrailOptions{PublicKey: pub, Trusted: heads, Keys: keys, Tenant: tenant})
			} else {
				if len(keys) > 0 || tenant != "" {
					return fmt.Errorf("%s is a whole-log export, not a trail: verify it without --key and --tenant, or export a trail with ppml audit export --key", file)
				}
				res, err = audit.VerifyExport(bytes.NewReader(data), audit.VerifyOptions{PublicKey: pub, Trusted: heads})
			}
			var te *audit.TamperError
			if errors.As(err, &te) {
				if kf.JSON {
					writeJSON(cmd.OutOrStdout(), map[string]any{"ok": false, "problems": te.Problems})
					return &silentExit{Code: ExitFailure}
				}
				return errors.New(command.TermSafe(err.Error(), ""))
			}
			if err != nil {
				return err
			}
			h := res.TreeHead
			at := h.Timestamp.UTC().Format(time.RFC3339)
			var msg string
			if trail {
				var parts []string
				for _, t := range res.Trails {
					parts = append(parts, fmt.Sprintf("%s: %d entries", t.TrailID, t.Count))
				}
				msg = fmt.Sprintf("trail verifies, complete up to the tree head of size %d signed at %s (root %s): %s", h.Size, at, h.RootHash, strings.Join(parts, "; "))
			} else {
				msg = fmt.Sprintf("audit log verifies: %d entries, tree head of size %d signed at %s, root %s", res.Entries, h.Size, at, h.RootHash)
			}
			if len(heads) > 0 {
				msg += fmt.Sprintf("; it extends the %d trusted tree heads", len(heads))
			}
			return printResult(cmd, kf.JSON, map[string]any{"ok": true, "entries": res.Entries, "tree_head": h, "trails": res.Trails, "trusted_heads": len(heads)}, command.TermSafe(msg, ""))
		},
	}
	kf.Add(c)
	c.Flags().StringVar(&file, "file", "", "export to verify offline (a whole log or a trail)")
	c.Flags().StringVar(&pubFile, "public-key", "", "tree-head public key PEM (required with --file; live: instead of the server's)")
	c.Flags().StringArrayVar(&keys, "key", nil, "the trail must hold this key's entries, complete (repeatable)")
	c.Flags().StringVar(&tenant, "tenant", "", "the trail must hold this tenant's own entries, complete")
	c.Flags().StringArrayVar(&trusted, "trusted-head", nil, "a tree head saved earlier that the log must extend (repeatable)")
	return c
}

func newAuditHeadCmd() *cobra.Command {
	var kf kmsFlags
	var out, pubFile string
	var force bool
	c := &cobra.Command{
		Use:   "head -o FILE [--public-key PEM]",
		Short: "Save the current signed tree head, to check later that the log only grew",
		Long: `Fetch the key service's current signed tree head (any role may) and save it. Give it later
to ppml audit verify --trusted-head FILE: a log that is shorter than it (a restored backup) or
that differs from it (a forked history) fails. With --public-key the head's signature is
checked before it is saved.`,
		Example: "  ppml audit head -o head-$(date +%F).json --public-key audit.pub",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the output file with -o FILE")
			}
			if err := checkOutput(out, force); err != nil {
				return err
			}
			var pub any
			if pubFile != "" {
				b, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				if pub, err = audit.ParsePublicKey(b); err != nil {
					return fmt.Errorf("--public-key %s: %w", pubFile, err)
				}
			}
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			h, err := c.AuditHead(cmd.Context(), pub)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			writeJSON(&buf, h)
			if err := atomicfile.WriteFile(out, buf.Bytes(), atomicfile.Options{Perm: 0o644, Overwrite: true}); err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			verified := "not verified: give --public-key to check it now"
			if pub != nil {
				verified = "signature verified"
			}
			return printResult(cmd, kf.JSON, h, fmt.Sprintf("saved the tree head of size %d signed at %s to %s (%s)", h.Size, h.Timestamp.UTC().Format(time.RFC3339), out, verified))
		},
	}
	kf.Add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "file to write")
	c.Flags().BoolVar(&force, "force", false, "replace existing files")
	c.Flags().StringVar(&pubFile, "public-key", "", "tree-head public key PEM: verify the head before saving it")
	return c
}

func newAuditPublicKeyCmd() *cobra.Command {
	var kf kmsFlags
	var out string
	var force bool
	c := &cobra.Command{
		Use:   "public-key -o FILE",
		Short: "Fetch the key that signs tree heads",
		Long: `Fetch the tree-head public key (PEM) and save it. It prints the key's fingerprint (SHA-256 of
its SubjectPublicKeyInfo, the key_id of every tree head): compare it with one from a channel you
trust, once, then verify everything offline with the saved key.`,
		Example: "  ppml audit public-key -o audit.pub",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the output file with -o FILE")
			}
			if err := checkOutput(out, force); err != nil {
				return err
			}
			c, err := kf.Client(false)
			if err != nil {
				return err
			}
			b, err := c.AuditPublicKey(cmd.Context())
			if err != nil {
				return err
			}
			pub, err := audit.ParsePublicKey(b)
			if err != nil {
				return fmt.Errorf("the server sent no valid tree-head key: %w", err)
			}
			id, err := audit.KeyID(pub)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, b, atomicfile.Options{Perm: 0o644, Overwrite: true}); err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			return printResult(cmd, kf.JSON, map[string]any{"file": out, "key_id": fmt.Sprintf("%x", id)}, fmt.Sprintf("saved the tree-head public key to %s; its key_id (SHA-256 of the key) is %x", out, id))
		},
	}
	kf.Add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "file to write")
	c.Flags().BoolVar(&force, "force", false, "replace existing files")
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
prove entries about their own keys. --save-head keeps the tree head for later checks
(ppml audit verify --trusted-head).`,
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
				fmt.Sprintf("entry %d (%s %s) is in the signed tree of %d entries, root %s", e.Index, command.TermSafe(string(e.Type), ""), command.TermSafe(e.Key, ""), head.Size, head.RootHash))
		},
	}
	kf.Add(c)
	c.Flags().StringVar(&pubFile, "public-key", "", "tree-head public key PEM")
	c.Flags().StringVar(&headOut, "save-head", "", "write the verified tree head (JSON) to this file")
	return c
}
