package sqlengine

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/engine/sql/sqldb"
	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/internal/lineedit"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/memfd"
	"github.com/ppml/ppml/parquetcrypt"
)

// engine is the sql engine's launcher.Engine: the job's decrypted inputs
// become tables, its outputs the results of their queries.
type engine struct{}

func (engine) Spec() job.Spec { return sqlspec.Spec }

func (engine) Run(ctx context.Context, j *launcher.Job) error {
	p, ok := j.Manifest.Parameters.(*sqlspec.Params)
	if !ok {
		return fmt.Errorf("sql engine: parameters are %T", j.Manifest.Parameters)
	}
	opts, _ := j.Options.(sqlspec.PrintOptions)
	if opts.Print == "" {
		opts.Print = sqlspec.PrintTable
	}
	tables, closeTables, err := tablesOf(ctx, p, j)
	defer closeTables()
	if err != nil {
		return err
	}
	e, err := sqldb.Open(ctx, sqldb.Config{MemoryLimit: j.Manifest.Resources.Memory,
		Threads: j.Manifest.Resources.Threads, Inputs: tables, OutputSlots: len(p.Outputs)})
	if err != nil {
		return err
	}
	defer e.Close()
	return run(ctx, e, p, j, opts)
}

func run(ctx context.Context, e *sqldb.Engine, p *sqlspec.Params, j *launcher.Job, opts sqlspec.PrintOptions) error {
	if len(p.Outputs) > 0 {
		outs := map[string]*memfd.File{}
		for _, o := range j.Outputs {
			outs[o.Name] = o.File
		}
		j.Logf("running %d SQL output(s)", len(p.Outputs))
		err := e.Run(ctx, planOf(p), func(name string) (io.Writer, error) {
			f, ok := outs[name]
			if !ok {
				return nil, fmt.Errorf("no output memfd for %s", name)
			}
			return f.OSFile(), nil
		})
		if err != nil {
			return err
		}
	} else if err := e.Exec(ctx, p.Setup); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	for i, q := range p.Print {
		res, err := e.Query(ctx, q, 0)
		if err != nil {
			return fmt.Errorf("print[%d]: %w", i, err)
		}
		if err := printResult(j.Stdout, res, opts.Print); err != nil {
			return err
		}
	}
	if p.Interactive {
		return interact(ctx, e, j, opts)
	}
	return nil
}

// interact reads statements from stdin (or the terminal's line editor),
// each ended by ';' at the end of a line, and prints each result; an error
// is printed and the session goes on. Ctrl-C drops the statement being
// typed, or stops the one running.
func interact(ctx context.Context, e *sqldb.Engine, j *launcher.Job, opts sqlspec.PrintOptions) error {
	var next func(prompt string) (string, error)
	if opts.Lines != nil {
		next = editedLines(ctx, opts)
	} else {
		if j.Stdin == nil {
			return errors.New("interactive job without a terminal (no stdin)")
		}
		var stop func()
		next, stop = stdinLines(ctx, j, opts)
		defer stop()
	}
	var stmt strings.Builder
	prompt := func() string {
		switch {
		case opts.Prompt == "":
			return ""
		case stmt.Len() == 0:
			return opts.Prompt
		}
		return strings.Repeat(" ", max(len(opts.Prompt)-4, 0)) + "... "
	}
	if opts.Prompt != "" {
		banner(ctx, e, j)
	}
	for {
		line, err := next(prompt())
		switch {
		case errors.Is(err, lineedit.ErrInterrupted):
			stmt.Reset()
			continue
		case err == io.EOF:
			if opts.Lines != nil {
				fmt.Fprintln(j.Stderr) // Ctrl-D leaves the cursor after the prompt
			}
			if strings.TrimSpace(stmt.String()) != "" {
				fmt.Fprintln(j.Stderr, "Error: input ended inside a statement (no closing ';'); it was not run")
			}
			return nil
		case err != nil:
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if stmt.Len() == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		if stmt.Len() == 0 {
			cmd := strings.Fields(line)
			switch cmd[0] {
			case ".quit", ".exit", "\\q":
				return nil
			}
			if strings.HasPrefix(cmd[0], ".") {
				if err := dotCommand(ctx, e, j, opts, cmd); err != nil {
					return err
				}
				continue
			}
		}
		stmt.WriteString(line)
		stmt.WriteByte('\n')
		if !strings.HasSuffix(strings.TrimSpace(line), ";") || !complete(stmt.String()) {
			continue
		}
		text := stmt.String()
		stmt.Reset()
		res, err := query(ctx, e, text, opts.Interrupt)
		switch {
		case err == errStopped && opts.Prompt != "":
			fmt.Fprintf(j.Stderr, "\nError: %v\n", err) // after the terminal's ^C
		case err != nil:
			fmt.Fprintf(j.Stderr, "Error: %v\n", err)
		case len(res.Columns) == 0:
		default:
			if err := printResult(j.Stdout, res, opts.Print); err != nil {
				return err
			}
		}
	}
}

// errStopped is the error shown for a statement stopped with Ctrl-C.
var errStopped = errors.New("interrupted (Ctrl-C); the session goes on")

// query runs one statement of a session; an interrupt while it runs stops
// it and the session goes on.
func query(ctx context.Context, e *sqldb.Engine, text string, intr <-chan struct{}) (*sqldb.Result, error) {
	if intr == nil {
		return e.Query(ctx, text, 0)
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-intr:
			close(stopped)
			cancel()
		case <-finished:
		}
	}()
	res, err := e.Query(qctx, text, 0)
	select {
	case <-stopped:
		if ctx.Err() == nil {
			return nil, errStopped
		}
	default:
	}
	return res, err
}

// editedLines reads the session's lines with the terminal's line editor.
// The editor blocks in a read of the terminal; a cancelled job does not wait
// for it (the caller puts the terminal back).
func editedLines(ctx context.Context, opts sqlspec.PrintOptions) func(string) (string, error) {
	type result struct {
		line string
		err  error
	}
	return func(prompt string) (string, error) {
		// An interrupt delivered while output was printed is stale now that
		// the user is at the prompt: it must not stop the next statement.
		select {
		case <-opts.Interrupt:
		default:
		}
		r := make(chan result, 1)
		go func() {
			l, err := opts.Lines.ReadLine(prompt)
			r <- result{l, err}
		}()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case res := <-r:
			if res.err != nil && res.err != io.EOF && !errors.Is(res.err, lineedit.ErrInterrupted) {
				return "", fmt.Errorf("read statements: %w", res.err)
			}
			return res.line, res.err
		}
	}
}

// stdinLines reads the session's lines from the job's stdin on a goroutine
// of their own, so that an interrupt can clear the statement while a read
// is blocked (the terminal has already discarded the line being typed).
// stop ends the reader.
func stdinLines(ctx context.Context, j *launcher.Job, opts sqlspec.PrintOptions) (next func(string) (string, error), stop func()) {
	sc := bufio.NewScanner(j.Stdin)
	sc.Buffer(make([]byte, 64<<10), sqlspec.MaxScript)
	lines := make(chan string)
	readDone := make(chan struct{})
	go func() {
		defer close(lines)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-readDone:
				return
			}
		}
	}()
	next = func(prompt string) (string, error) {
		if prompt != "" {
			fmt.Fprint(j.Stderr, prompt)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-opts.Interrupt:
			fmt.Fprintln(j.Stderr)
			return "", lineedit.ErrInterrupted
		case l, ok := <-lines:
			if !ok {
				if err := sc.Err(); err != nil {
					return "", fmt.Errorf("read statements: %w", err)
				}
				return "", io.EOF
			}
			return l, nil
		}
	}
	return next, func() { close(readDone) }
}

// complete says whether the last ';' of s ends a statement (not inside a
// string or comment): the splitter then sees a trailing statement-free tail.
func complete(s string) bool {
	stmts, err := sqlspec.Split(s + "\nSELECT 1")
	if err != nil {
		return false
	}
	return len(stmts) >= 2 && strings.TrimSpace(stmts[len(stmts)-1]) == "SELECT 1"
}

func printResult(w io.Writer, res *sqldb.Result, f sqlspec.PrintFormat) error {
	switch f {
	case sqlspec.PrintCSV:
		return sqldb.PrintCSV(w, res)
	case sqlspec.PrintJSON:
		return sqldb.PrintJSON(w, res)
	}
	return sqldb.PrintTable(w, res)
}

// tablesOf turns the launcher's inputs into engine tables, decrypting the
// Parquet inputs with modular encryption into sealed memfds.
func tablesOf(ctx context.Context, p *sqlspec.Params, j *launcher.Job) ([]sqldb.Input, func(), error) {
	var mems []*memfd.File
	closeAll := func() {
		for _, m := range mems {
			m.Close()
		}
		mems = nil
	}
	var out []sqldb.Input
	for _, in := range j.Inputs {
		t := p.Tables[in.Name]
		if t == nil {
			t = &sqlspec.Table{}
		}
		ti := sqldb.Input{Name: in.Name, Format: t.Format, Materialize: t.Materialize}
		if in.Raw {
			ks, err := parquetKeys(t.Encryption, j.Secrets)
			if err != nil {
				return nil, closeAll, fmt.Errorf("input %s: %w", in.Name, err)
			}
			for _, f := range in.Files {
				m, err := decryptParquet(ctx, f.Path, ks, t.Encryption)
				if err != nil {
					return nil, closeAll, fmt.Errorf("input %s: %w", in.Name, err)
				}
				mems = append(mems, m)
				ti.Files = append(ti.Files, sqldb.File{Path: m.Path(), Name: filepath.Base(f.Path)})
			}
			clearKeys(ks)
		} else {
			for _, f := range in.Files {
				if ti.Format == "" {
					ft, err := sqldb.FormatForContentType(f.ContentType)
					if err != nil {
						return nil, closeAll, fmt.Errorf("input %s: %s: %w (set parameters.tables.%s.format)", in.Name, filepath.Base(f.Path), err, in.Name)
					}
					ti.Format = ft
				}
				ti.Files = append(ti.Files, sqldb.File{Path: f.Mem.Path(), Name: filepath.Base(f.Path)})
			}
		}
		if len(ti.Files) == 0 {
			return nil, closeAll, fmt.Errorf("input %s: no files", in.Name)
		}
		out = append(out, ti)
	}
	return out, closeAll, nil
}

func decryptParquet(ctx context.Context, path string, ks *parquetcrypt.StaticKeys, e *sqlspec.ParquetEncryption) (*memfd.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	m, err := memfd.New("parquet-" + filepath.Base(path))
	if err != nil {
		return nil, err
	}
	var opts []parquetcrypt.Option
	if e.AADPrefix != "" {
		opts = append(opts, parquetcrypt.WithAADPrefix([]byte(e.AADPrefix)))
	}
	if _, err := parquetcrypt.DecryptTo(ctx, m.OSFile(), src, ks, opts...); err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: Parquet modular encryption: %w", filepath.Base(path), err)
	}
	if err := m.Seal(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func parquetKeys(e *sqlspec.ParquetEncryption, secrets map[string][]byte) (*parquetcrypt.StaticKeys, error) {
	ks := &parquetcrypt.StaticKeys{ByColumn: map[string][]byte{}, ByID: map[string][]byte{}}
	get := func(p string) ([]byte, error) {
		b, ok := secrets[e.Abs(p)]
		if !ok {
			return nil, fmt.Errorf("key file %s was not released", p)
		}
		k, err := ParseAESKey(b)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", p, err)
		}
		return k, nil
	}
	var err error
	if e.FooterKey != "" {
		if ks.Footer, err = get(e.FooterKey); err != nil {
			return nil, err
		}
	}
	for c, p := range e.ColumnKeys {
		if ks.ByColumn[c], err = get(p); err != nil {
			clearKeys(ks)
			return nil, err
		}
	}
	for id, p := range e.KeyIDs {
		if ks.ByID[id], err = get(p); err != nil {
			clearKeys(ks)
			return nil, err
		}
	}
	return ks, nil
}

func clearKeys(ks *parquetcrypt.StaticKeys) {
	clear(ks.Footer)
	for _, k := range ks.ByColumn {
		clear(k)
	}
	for _, k := range ks.ByID {
		clear(k)
	}
}

// ParseAESKey reads a key file's plaintext: the raw key bytes (16, 24 or
// 32), or text "hex:<hex digits>" or "base64:<standard base64>" (white
// space around it ignored). The prefix keeps the forms unambiguous: 32
// ASCII characters are a raw AES-256 key, never 16 bytes of hex.
func ParseAESKey(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	var k []byte
	var err error
	switch {
	case strings.HasPrefix(s, "hex:"):
		k, err = hex.DecodeString(s[len("hex:"):])
	case strings.HasPrefix(s, "base64:"):
		k, err = base64.StdEncoding.DecodeString(s[len("base64:"):])
	default:
		k = append([]byte(nil), b...)
	}
	if err != nil {
		return nil, fmt.Errorf("not an AES key: %s", strings.SplitN(s, ":", 2)[0]+" text does not decode")
	}
	if !validAES(len(k)) {
		clear(k)
		return nil, fmt.Errorf("not an AES key: want 16, 24 or 32 bytes (raw, or hex:/base64: text), found %d", len(k))
	}
	return k, nil
}

func validAES(n int) bool { return n == 16 || n == 24 || n == 32 }

// planOf is the engine plan of the parameters' outputs.
func planOf(p *sqlspec.Params) *sqldb.Plan {
	pl := &sqldb.Plan{Setup: p.Setup}
	for _, o := range p.Outputs {
		pl.Outputs = append(pl.Outputs, sqldb.Output{Name: o.Name, Query: o.Query, Format: o.Format})
	}
	return pl
}

func init() { launcher.Register(engine{}) }

const sessionHelp = `Statements end with ';' at the end of a line; each result is printed.
  .tables         list the tables
  .schema NAME    show a table's columns and types
  .help           this help
  .quit           end the session (or Ctrl-D)
Ctrl-C drops the statement being typed, or stops the one running.
On a terminal: Up/Down recall earlier lines (kept in memory for this session
only, never written to a file); Left/Right, Home/End (Ctrl-A/Ctrl-E),
Ctrl-U, Ctrl-K and Ctrl-W edit the line.
`

// banner tells a person at a terminal where they are and how to get out.
func banner(ctx context.Context, e *sqldb.Engine, j *launcher.Job) {
	names := []string{}
	if res, err := e.Query(ctx, tablesQuery, 0); err == nil {
		for _, r := range res.Rows {
			names = append(names, fmt.Sprint(r[0]))
		}
	}
	n := fmt.Sprintf("%d tables", len(names))
	if len(names) == 1 {
		n = "1 table"
	}
	fmt.Fprintf(j.Stderr, "ppml sql: %s (%s), decrypted in memory only.\nEnd statements with ';'. .help for help, Ctrl-D to quit.\n", n, strings.Join(names, ", "))
}

const tablesQuery = "SELECT table_name FROM information_schema.tables ORDER BY table_name"

// dotCommand runs one of the session's own commands (.tables, .schema,
// .help); an unknown one or a bad argument is reported and the session
// goes on.
func dotCommand(ctx context.Context, e *sqldb.Engine, j *launcher.Job, opts sqlspec.PrintOptions, cmd []string) error {
	var q string
	switch {
	case cmd[0] == ".help":
		fmt.Fprint(j.Stderr, sessionHelp)
		return nil
	case cmd[0] == ".tables" && len(cmd) == 1:
		q = tablesQuery
	case cmd[0] == ".schema" && len(cmd) == 2:
		name := strings.ReplaceAll(cmd[1], "'", "''")
		q = "SELECT column_name AS column, data_type AS type FROM information_schema.columns WHERE table_name = '" + name + "' ORDER BY ordinal_position"
	case cmd[0] == ".schema":
		fmt.Fprintln(j.Stderr, "Error: .schema NAME: give one table name (.tables lists them)")
		return nil
	default:
		fmt.Fprintf(j.Stderr, "Error: unknown command %s (.help lists them)\n", cmd[0])
		return nil
	}
	res, err := e.Query(ctx, q, 0)
	if err != nil {
		fmt.Fprintf(j.Stderr, "Error: %v\n", err)
		return nil
	}
	if cmd[0] == ".schema" && len(res.Rows) == 0 {
		fmt.Fprintf(j.Stderr, "Error: no table %s (.tables lists them)\n", cmd[1])
		return nil
	}
	return printResult(j.Stdout, res, opts.Print)
}
