package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ppml/ppml/memfd"

	"github.com/ppml/ppml/engine/sql/sqlspec"
)

// Output asks for the result of Query written in Format under Name.
type Output struct {
	Name   string
	Query  string // a script; its last statement must return rows
	Format Format
}

// Plan is what a sql job runs: Setup once, then each output's query.
type Plan struct {
	// Setup runs before any output (e.g. CREATE TEMP TABLE/VIEW, macros).
	Setup   string
	Outputs []Output
}

// Validate checks names, formats and that every script splits into at
// least one statement; it does not run anything.
func (p *Plan) Validate() error {
	if _, err := sqlspec.Split(p.Setup); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if len(p.Outputs) == 0 {
		return errors.New("no outputs: name at least one output and its query")
	}
	seen := map[string]bool{}
	for _, o := range p.Outputs {
		if o.Name == "" {
			return errors.New("an output has no name")
		}
		if seen[o.Name] {
			return fmt.Errorf("output %s is named twice", o.Name)
		}
		seen[o.Name] = true
		if f, err := sqlspec.ParseFormat(string(o.Format)); err != nil || f == Text {
			return fmt.Errorf("output %s: format %q: outputs are csv, json or parquet", o.Name, o.Format)
		}
		stmts, err := sqlspec.Split(o.Query)
		if err != nil {
			return fmt.Errorf("output %s: %w", o.Name, err)
		}
		if len(stmts) == 0 {
			return fmt.Errorf("output %s: query is empty", o.Name)
		}
	}
	return nil
}

// Run executes the plan and, only when every statement succeeded, writes
// each output to the writer open returns for its name. A failure (syntax,
// binder, out of memory...) leaves every writer untouched.
func (e *Engine) Run(ctx context.Context, p *Plan, open func(name string) (io.Writer, error)) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(p.Outputs) > len(e.slots) {
		return fmt.Errorf("plan has %d outputs but the engine was opened with %d output slots", len(p.Outputs), len(e.slots))
	}
	if err := e.Exec(ctx, p.Setup); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	for i, o := range p.Outputs {
		if err := e.fill(ctx, e.slots[i], o.Query, o.Format); err != nil {
			return fmt.Errorf("output %s: %w", o.Name, err)
		}
	}
	for i, o := range p.Outputs {
		w, err := open(o.Name)
		if err != nil {
			return fmt.Errorf("output %s: %w", o.Name, err)
		}
		if err := copySlot(w, e.slots[i]); err != nil {
			return fmt.Errorf("output %s: %w", o.Name, err)
		}
	}
	return nil
}

// Exec runs every statement of script, discarding results.
func (e *Engine) Exec(ctx context.Context, script string) error {
	stmts, err := sqlspec.Split(script)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if err := e.exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// Write runs script and writes the result of its last statement to w in
// format f. Nothing reaches w unless the whole script succeeded.
func (e *Engine) Write(ctx context.Context, script string, f Format, w io.Writer) error {
	if f != CSV && f != JSON && f != Parquet {
		return fmt.Errorf("cannot write format %q: outputs are csv, json or parquet", f)
	}
	if err := e.fill(ctx, e.slots[0], script, f); err != nil {
		return err
	}
	return copySlot(w, e.slots[0])
}

// Query runs script and returns the result of its last statement, for
// printing; at most maxRows rows are kept (0: all) and Truncated says
// whether more existed.
func (e *Engine) Query(ctx context.Context, script string, maxRows int) (*Result, error) {
	last, err := e.runPrefix(ctx, script)
	if err != nil {
		return nil, err
	}
	if err := e.checkSingle(last); err != nil {
		return nil, err
	}
	rows, err := e.conn.QueryContext(ctx, last)
	if err != nil {
		return nil, e.classify(err)
	}
	defer rows.Close()
	res, err := readResult(rows, maxRows)
	if err != nil {
		return nil, e.classify(err)
	}
	return res, nil
}

// fill runs script and leaves the last statement's result, encoded by
// DuckDB's own writers, in slot.
func (e *Engine) fill(ctx context.Context, slot *memfd.File, script string, f Format) error {
	last, err := e.runPrefix(ctx, script)
	if err != nil {
		return err
	}
	// last must parse on its own as one statement, so it is balanced and
	// the COPY below wraps exactly it: it cannot close the parenthesis and
	// redirect the COPY.
	if err := e.checkSingle(last); err != nil {
		return err
	}
	if err := slot.OSFile().Truncate(0); err != nil {
		return fmt.Errorf("reset output buffer: %w", err)
	}
	// The newline ends a trailing -- comment before the parenthesis.
	// USE_TMP_FILE would write next to the target (/proc/self/fd/tmp_N),
	// which is neither possible nor allowed.
	copyStmt := "COPY (" + last + "\n) TO " + quoteString(slot.Path()) + " (" + copyOptions(f) + ", USE_TMP_FILE false)"
	if err := e.exec(ctx, copyStmt); err != nil {
		slot.OSFile().Truncate(0)
		if !isQuery(last) {
			return fmt.Errorf("the last statement must return rows to be written as %s: %w", f, err)
		}
		return err
	}
	return nil
}

func copyOptions(f Format) string {
	switch f {
	case CSV:
		return "FORMAT csv, HEADER true"
	case JSON:
		return "FORMAT json"
	default:
		return "FORMAT parquet, COMPRESSION zstd"
	}
}

// runPrefix executes all but the last statement of script and returns the
// last one's text.
func (e *Engine) runPrefix(ctx context.Context, script string) (string, error) {
	stmts, err := sqlspec.Split(script)
	if err != nil {
		return "", err
	}
	if len(stmts) == 0 {
		return "", errors.New("no SQL statement to run")
	}
	for _, s := range stmts[:len(stmts)-1] {
		if err := e.exec(ctx, s); err != nil {
			return "", err
		}
	}
	return stmts[len(stmts)-1], nil
}

// exec prepares s as exactly one statement (DuckDB's parser decides) and
// runs it.
func (e *Engine) exec(ctx context.Context, s string) error {
	if err := e.checkSingle(s); err != nil {
		return err
	}
	_, err := e.conn.ExecContext(ctx, s)
	return e.classify(err)
}

// checkSingle asks DuckDB's parser whether s is exactly one statement and
// prepares it, so binder errors surface here with DuckDB's message.
func (e *Engine) checkSingle(s string) error {
	err := e.conn.Raw(func(dc any) error {
		// The driver's context-free Prepare refuses text that DuckDB
		// parses as more or fewer than one statement and, unlike the
		// context variant, executes nothing.
		c, ok := dc.(driver.Conn)
		if !ok {
			return errors.New("unexpected DuckDB driver connection")
		}
		st, err := c.Prepare(s)
		if err != nil {
			return err
		}
		return st.Close()
	})
	if err != nil && strings.Contains(err.Error(), "multi-statement") {
		return fmt.Errorf("%q is not exactly one SQL statement (statement splitting disagrees with DuckDB's parser)", abbreviate(s))
	}
	return e.classify(err)
}

// isQuery is a rough test used only to word an error message better.
func isQuery(s string) bool {
	w := strings.ToUpper(strings.Fields(s + " x")[0])
	switch strings.TrimLeft(w, "(") {
	case "SELECT", "WITH", "FROM", "VALUES", "TABLE", "PIVOT", "UNPIVOT", "DESCRIBE", "SHOW", "SUMMARIZE":
		return true
	}
	return false
}

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func copySlot(w io.Writer, slot *memfd.File) error {
	f := slot.OSFile()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind output buffer: %w", err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// Rows runs script and returns the rows of its last statement for the
// caller to read and close before the next call (the engine has one
// connection). Errors are classified as in Query (memory-limit errors
// become *MemoryError).
func (e *Engine) Rows(ctx context.Context, script string) (*sql.Rows, error) {
	last, err := e.runPrefix(ctx, script)
	if err != nil {
		return nil, err
	}
	if err := e.checkSingle(last); err != nil {
		return nil, err
	}
	rows, err := e.conn.QueryContext(ctx, last)
	if err != nil {
		return nil, e.classify(err)
	}
	return rows, nil
}
