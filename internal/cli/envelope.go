package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/filecrypt"
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/internal/progress"
)

func init() {
	register(newEncryptCmd)
	register(newDecryptCmd)
	register(newInspectCmd)
}

type cryptFlags struct {
	key, recipient, out, typ        string
	recursive, force, json, encrypt bool
	conn                            kmsFlags // for kms:// keys
}

func (f *cryptFlags) bind(c *cobra.Command, encrypt bool) {
	f.encrypt = encrypt
	if encrypt {
		c.Flags().StringVar(&f.key, "key", "", "key file (local key or recipient private key) or kms:// key reference")
		c.Flags().StringVar(&f.recipient, "recipient", "", "encrypt to a public key: a .pub file, the key itself (ppml1…, ppmlpq1…) or a kms:// recipient key")
	} else {
		c.Flags().StringVar(&f.key, "key", "", "key file (local key or recipient private key) or kms:// key reference")
	}
	c.Flags().StringVarP(&f.out, "output", "o", "", "output file or directory ('-' for stdout)")
	c.Flags().BoolVarP(&f.recursive, "recursive", "r", false, "process a directory tree into a mirror tree (needs -o DIR)")
	c.Flags().BoolVar(&f.force, "force", false, "replace existing outputs")
	c.Flags().BoolVar(&f.json, "json", false, "print results as JSON (no progress bar)")
	f.conn.AddConnection(c, "kms:// keys: reach the reference's key service at this URL instead of its host:port (a tunnel, a port-forward); env PPML_SERVER is used only when it names the reference's host:port")
	if encrypt {
		c.Flags().StringVar(&f.typ, "type", "", "content type: csv, json, parquet, model or bytes (default: from the file extension)")
	}
}

// check validates flag combinations; usage mistakes exit 2.
func (f *cryptFlags) check(in string) error {
	switch {
	case f.key != "" && f.recipient != "":
		return usageErrorf("give either --key or --recipient, not both")
	case f.key == "" && f.recipient == "" && f.encrypt:
		return usageErrorf("give the key with --key FILE, or a public key to encrypt to with --recipient FILE")
	}
	if f.recursive {
		if in == "-" || f.out == "-" {
			return usageErrorf("-r works on directories, not stdin or stdout")
		}
		if f.out == "" {
			return usageErrorf("-r needs an output directory: -o DIR")
		}
	}
	if f.json && (f.out == "-" || in == "-" && f.out == "") {
		return usageErrorf("--json prints to stdout, which is taken by the data; give -o FILE")
	}
	return nil
}

func refuseTerminal(cmd *cobra.Command, out, in string) error {
	f, ok := cmd.OutOrStdout().(*os.File)
	if (out == "-" || out == "" && in == "-") && ok && isTerminal(f) {
		return usageErrorf("refusing to write encrypted data to a terminal; give -o FILE or redirect stdout")
	}
	return nil
}

func (f *cryptFlags) options(cmd *cobra.Command) filecrypt.Options {
	o := filecrypt.Options{Force: f.force, Quiet: f.json, Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout()}
	if e, ok := cmd.ErrOrStderr().(*os.File); ok {
		o.Progress = e
	} else {
		o.Quiet = true
	}
	return o
}

func report(cmd *cobra.Command, f *cryptFlags, verb string, v any, files []filecrypt.Result, skipped []string) error {
	if f.json {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	w := cmd.OutOrStdout() // never the data stream: callers skip reporting for -o -
	for _, r := range files {
		fmt.Fprintf(w, "%s %s -> %s (%s, %s, key %s)\n", verb, r.Input, r.Output, r.Type, progress.Bytes(r.Bytes), r.KeyRef)
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "skipped %s (not a regular %sfile)\n", s, map[bool]string{true: "", false: ".ppml "}[verb == "encrypted"])
	}
	return nil
}

func newEncryptCmd() *cobra.Command {
	var f cryptFlags
	c := &cobra.Command{
		Use:   "encrypt (--key KEY | --recipient PUBKEY) [-o OUT] [--type TYPE] IN",
		Short: "Encrypt a file (or with -r a directory tree) into the ppml envelope",
		Long: `Encrypt IN into the ppml envelope format under KEY, or to the public key PUBKEY. The
output defaults to IN.ppml; '-' reads stdin or writes stdout. Outputs are written atomically
and existing files are never replaced without --force; standard output redirected to a
regular file is cut back to what it held if encryption fails. With -r, every file under the
directory IN is encrypted to the same relative path plus .ppml under the directory given
with -o.

--recipient encrypts to a public key (a .pub file from ppml key generate --recipient, or
the key's text ppml1…/ppmlpq1… itself): whoever runs the command cannot decrypt the result;
only the holder of the private key can. One recipient per file.`,
		Example: `  ppml encrypt --key owner.key people.csv                 # writes people.csv.ppml
  ppml encrypt --key owner.key -o model.ppml --type model model.json
  cat data.json | ppml encrypt --key owner.key - > data.json.ppml
  ppml encrypt --key owner.key -r -o enc/ datasets/
  ppml encrypt --recipient owner.pub people.csv           # only owner.key decrypts it`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := args[0]
			if err := f.check(in); err != nil {
				return err
			}
			var o filecrypt.Options = f.options(cmd)
			if f.typ != "" {
				t, err := envelope.ParseContentType(f.typ)
				if err != nil {
					return &UsageError{Err: err}
				}
				o.Type = t
			}
			if err := refuseTerminal(cmd, f.out, in); err != nil {
				return err
			}
			var kw envelope.KeyWrapper
			var err error
			if f.recipient != "" {
				kw, err = loadRecipient(cmd, f.recipient, &f.conn)
			} else {
				kw, _, err = command.LoadKeyWith(cmd, f.key, &f.conn)
			}
			if err != nil {
				return err
			}
			if f.recursive {
				res, err := filecrypt.EncryptTree(in, f.out, kw, o)
				if rerr := report(cmd, &f, "encrypted", res, res.Files, res.Skipped); err == nil {
					err = rerr
				}
				return err
			}
			res, err := filecrypt.EncryptFile(in, f.out, kw, o)
			if err != nil {
				return err
			}
			if res.Output == "-" {
				return nil
			}
			return report(cmd, &f, "encrypted", res, []filecrypt.Result{res}, nil)
		},
	}
	f.bind(c, true)
	return c
}

func newDecryptCmd() *cobra.Command {
	var f cryptFlags
	c := &cobra.Command{
		Use:   "decrypt [--key KEY] [-o OUT] IN",
		Short: "Decrypt a ppml envelope (or with -r a directory tree)",
		Long: `Decrypt IN with KEY: a local key file, a recipient private key file (for files encrypted
to its public key), or a kms:// key. Without --key, a file under a kms:// key is decrypted
through the key service its header names (with --token or PPML_TOKEN, the owner's). The output defaults to IN without its .ppml suffix; '-' reads
stdin or writes stdout. A file output appears only when every segment authenticated; to
stdout from a file, a bad file writes nothing (to a pipe, every segment is authenticated
before the first byte is written; to a regular file, it is cut back on failure). From
stdin, data streams: only authenticated segments are written and output stops at the first
failure (exit status 1). With -r, every NAME.ppml under the directory IN is decrypted to
NAME under the directory given with -o.`,
		Example: `  ppml decrypt --key owner.key people.csv.ppml            # writes people.csv
  ppml decrypt --key owner.key -o - people.csv.ppml | head
  ppml decrypt --key owner.key -r -o plain/ enc/`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := args[0]
			if err := f.check(in); err != nil {
				return err
			}
			o := f.options(cmd)
			// Without --key, the key the header names: kms:// keys through
			// the key service; a local key file must be given.
			kr := command.HeaderResolver(cmd, &f.conn)
			if f.key != "" {
				var err error
				if _, kr, err = command.LoadKeyWith(cmd, f.key, &f.conn); err != nil {
					return err
				}
			}
			if f.recursive {
				res, err := filecrypt.DecryptTree(in, f.out, kr, o)
				if rerr := report(cmd, &f, "decrypted", res, res.Files, res.Skipped); err == nil {
					err = rerr
				}
				return err
			}
			res, err := filecrypt.DecryptFile(in, f.out, kr, o)
			if err != nil {
				return err
			}
			if res.Output == "-" {
				return nil
			}
			return report(cmd, &f, "decrypted", res, []filecrypt.Result{res}, nil)
		},
	}
	f.bind(c, false)
	return c
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print the header of a ppml envelope (no key needed, no key material shown)",
		Long: `Print the envelope header of FILE ('-' for stdin): format version, cipher suite, key
reference, content type, sizes and segment layout. No key is used, so nothing is
authenticated; the layout check compares the file size with the header. Exit status 1
when FILE is not an envelope or its size does not fit the header.`,
		Example: `  ppml inspect people.csv.ppml
  ppml inspect --json people.csv.ppml | jq .key_ref`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := args[0]
			var r io.Reader = cmd.InOrStdin()
			size := int64(-1)
			name := "stdin"
			if in != "-" {
				fh, err := os.Open(in)
				if err != nil {
					return fmt.Errorf("input: %w", err)
				}
				defer fh.Close()
				if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() {
					size = st.Size()
				} else if err == nil && st.IsDir() {
					return fmt.Errorf("input %s is a directory", in)
				}
				r, name = fh, filepath.Clean(in)
			}
			info, err := envelope.Inspect(r, size)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			info.File = name
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), info); err != nil {
					return err
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), info.Text())
			}
			if info.LayoutError != "" {
				if asJSON {
					fmt.Fprintf(cmd.ErrOrStderr(), "ppml: %s: %s\n", name, info.LayoutError)
					return &silentExit{Code: ExitFailure}
				}
				return fmt.Errorf("%s: %s", name, info.LayoutError)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the header as JSON")
	return c
}
