package runcli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/internal/lineedit"
	"github.com/ppml/ppml/launcher"
)

func newSQLCmd() *cobra.Command {
	var (
		k        command.KMSFlags
		manifest string
		inputs   []string
		formats  []string
		query    string
		tee      string
		keyFiles []string
		asCSV    bool
		memory   string
		threads  int
	)
	cmd := &cobra.Command{
		Use:   "sql (--manifest job.yaml | --input NAME=FILE... [--query SQL])",
		Short: "Run SQL over encrypted tables through the trusted launcher and show the result",
		Long: `Run SQL over encrypted files as tables (docs/sql.md), through the same trusted
launcher as ppml run: keys come in one release from the key service after attestation
(--server) or from local key files (--key, development only), inputs are decrypted into
memory only.

This is the data scientist's viewer: the result is printed IN PLAINTEXT on this terminal,
which is the point of the command. The job it runs (inputs, the query, or "interactive"
when no --query is given) has its own digest (shown on stderr); the key policy of every
input must allow that job, so a data owner decides who may look at what. An interactive
session may run any SQL over the inputs: allow its digest only where that is intended.

--input NAME=FILE makes table NAME from an encrypted file (or a directory of them); the
format comes from the envelope's content type unless --format NAME=csv|json|parquet|text
overrides it. Without --query, statements are read from stdin, each ending with ';' at
the end of a line, in one DuckDB session (.quit or end of input ends it). At a
terminal the session has a banner, .tables, .schema NAME and .help, line editing and
history (Up/Down; kept in memory for the session only and never written to a file,
since statements can hold data and secrets); Ctrl-C drops the statement being typed
or stops the one running, Ctrl-D ends the session.
--manifest runs a sql job manifest instead: its outputs are written encrypted, and the
results of its print: queries (or its interactive session) come here.`,
		Example: `  ppml sql --input people=people.json.ppml --key owner.key --query "SELECT name FROM people WHERE age > 21"
  ppml sql --input people=people.json.ppml --key owner.key --csv --query "SELECT * FROM people"
  ppml sql --input people=people.json.ppml --server https://kms:8443 --token $T --tee auto
  ppml sql --manifest job.yaml --key owner.key`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (manifest == "") == (len(inputs) == 0 && query == "") {
				return command.Usagef("give --manifest FILE, or --input NAME=FILE (and --query SQL)")
			}
			if manifest != "" && (len(inputs) > 0 || query != "" || len(formats) > 0 || memory != "" || threads != 0) {
				return command.Usagef("--manifest cannot be combined with --input, --query, --format, --memory or --threads")
			}
			if asCSV && k.JSON {
				return command.Usagef("--csv and --json exclude each other")
			}
			if err := checkTEE(tee); err != nil {
				return err
			}
			var m *launcher.Manifest
			var err error
			if manifest == "" {
				a := sqlspec.AdHoc{Query: query, Memory: memory, Threads: threads, Formats: map[string]string{}}
				for _, s := range inputs {
					np, err := sqlspec.ParseNamedPath(s)
					if err != nil {
						return command.Usagef("--input %v", err)
					}
					a.Inputs = append(a.Inputs, np)
				}
				for _, s := range formats {
					np, err := sqlspec.ParseNamedPath(s)
					if err != nil {
						return command.Usagef("--format %v", err)
					}
					a.Formats[np.Name] = np.Path
				}
				data, err := a.Manifest()
				if err != nil {
					return command.Usagef("%v", err)
				}
				if m, err = launcher.Parse(data, "", "job manifest"); err != nil {
					return command.JobError("job manifest", err)
				}
			} else if m, err = launcher.Load(manifest); err != nil {
				return command.JobError(manifest, err)
			} else if m.Job.Engine != sqlspec.Name {
				return command.Usagef("%s is a %s job: ppml sql runs sql jobs (use ppml run)", manifest, m.Job.Engine)
			}
			opts := sqlspec.PrintOptions{Print: sqlspec.PrintTable}
			switch {
			case asCSV:
				opts.Print = sqlspec.PrintCSV
			case k.JSON:
				opts.Print = sqlspec.PrintJSON
			}
			stopSignals := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
			in, inOK := cmd.InOrStdin().(*os.File)
			if inOK && command.IsTerminal(in) {
				opts.Prompt = "ppml sql> "
			}
			interactive := query == "" && manifest == ""
			if p, ok := m.Job.Parameters.(*sqlspec.Params); ok && p.Interactive {
				interactive = true
			}
			if opts.Prompt != "" && interactive {
				// At a terminal the session's lines are read with line editing and
				// history (in memory only: statements can hold data and secrets),
				// as long as what is typed is echoed to the terminal too.
				if errf, ok := cmd.ErrOrStderr().(*os.File); ok && command.IsTerminal(errf) {
					if ed, err := lineedit.New(in, errf); err == nil {
						defer ed.Close()
						opts.Lines = ed
					}
				}
				// Ctrl-C drops the statement being typed (the line editor sees
				// it as a key) or stops the one running (a signal, since the
				// terminal is not in raw mode then) instead of stopping ppml sql;
				// Ctrl-D or .quit end the session.
				intr := make(chan os.Signal, 1)
				signal.Notify(intr, syscall.SIGINT)
				defer func() { signal.Stop(intr); close(intr) }()
				cleared := make(chan struct{}, 1)
				go func() {
					for range intr {
						select {
						case cleared <- struct{}{}:
						default:
						}
					}
				}()
				opts.Interrupt = cleared
				stopSignals = []os.Signal{syscall.SIGTERM}
			}
			keys, err := keySource(cmd, &k, tee, keyFiles, "ppml sql")
			if err != nil {
				return err
			}
			cfg := launcher.Config{Manifest: m, Keys: keys, Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(),
				Stderr: cmd.ErrOrStderr(), Log: cmd.ErrOrStderr(), EngineOptions: opts}
			ctx, stop := signal.NotifyContext(cmd.Context(), stopSignals...)
			defer stop()
			_, err = launcher.Run(ctx, cfg)
			if err != nil && ctx.Err() != nil && context.Cause(ctx) != nil {
				return fmt.Errorf("stopped: %w", err)
			}
			return err
		},
	}
	k.Add(cmd)
	f := cmd.Flags()
	f.StringVar(&manifest, "manifest", "", "sql job manifest (YAML) to run")
	f.StringArrayVar(&inputs, "input", nil, "table NAME from encrypted FILE or directory, as NAME=FILE (repeatable)")
	f.StringArrayVar(&formats, "format", nil, "read table NAME as csv, json, parquet or text, as NAME=FORMAT (repeatable)")
	f.StringVar(&query, "query", "", "SQL to run; its last statement's rows are printed (default: read statements from stdin)")
	f.StringVar(&tee, "tee", "auto", "evidence backend with --server: auto, sim (insecure), gramine or tsm")
	f.StringArrayVar(&keyFiles, "key", nil, "local key file for local: keys (repeatable; development only)")
	f.BoolVar(&asCSV, "csv", false, "print results as CSV (--json: JSON lines)")
	f.StringVar(&memory, "memory", "", "DuckDB memory limit, e.g. 2GiB (default: the manifest default, 1GiB)")
	f.IntVar(&threads, "threads", 0, "DuckDB threads (default: the manifest default)")
	return cmd
}
