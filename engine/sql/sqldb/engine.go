package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/ppml/ppml/memfd"
)

// Config bounds the engine. Memory and threads come from the job manifest's
// resources.
type Config struct {
	// MemoryLimit is DuckDB's memory_limit in bytes. It must be positive:
	// with spilling disabled it is a hard ceiling.
	MemoryLimit int64
	// Threads is DuckDB's worker thread count; 0 means 1.
	Threads int
	// Inputs become tables (views) named after each input.
	Inputs []Input
	// OutputSlots is how many results Run can hold at once before writing
	// them (one per named output). Each slot is a memfd DuckDB may write to;
	// at least one is always made.
	OutputSlots int
}

// Engine is a locked-down, in-memory DuckDB with the job's inputs as tables.
// It is not safe for concurrent use: statements run one after another on a
// single connection.
type Engine struct {
	db    *sql.DB
	conn  *sql.Conn
	slots []*memfd.File
	limit int64
}

// Open starts DuckDB and locks it down before any caller SQL runs:
//
//  1. at creation (DSN config): an empty temp_directory (no spill, nothing ever
//     written to disk), memory_limit, threads, and no extension
//     auto-install/auto-load;
//  2. on the one connection: allowed_paths = the input files and the output
//     slots, then enable_external_access=false, which confines every file
//     access to those paths (and forbids LOAD, INSTALL, ATTACH);
//  3. the input tables are created;
//  4. lock_configuration=true, after which no SET or RESET succeeds.
//
// allowed_paths cannot be given in the DSN (DuckDB rejects list options
// there) and cannot change once external access is off, hence this order.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.MemoryLimit <= 0 {
		return nil, errors.New("sql engine: memory limit must be positive")
	}
	if cfg.Threads < 0 {
		return nil, fmt.Errorf("sql engine: negative thread count %d", cfg.Threads)
	}
	threads := cfg.Threads
	if threads == 0 {
		threads = 1
	}
	if err := checkInputs(cfg.Inputs); err != nil {
		return nil, err
	}
	e := &Engine{limit: cfg.MemoryLimit}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	n := max(cfg.OutputSlots, 1)
	for i := range n {
		m, err := memfd.New("sql-output-" + strconv.Itoa(i))
		if err != nil {
			return nil, fmt.Errorf("sql engine: output buffer: %w", err)
		}
		e.slots = append(e.slots, m)
	}

	dsn := url.Values{}
	dsn.Set("temp_directory", "")
	dsn.Set("max_temp_directory_size", "0B")
	dsn.Set("memory_limit", strconv.FormatInt(cfg.MemoryLimit, 10)+"B")
	dsn.Set("threads", strconv.Itoa(threads))
	dsn.Set("autoinstall_known_extensions", "false")
	dsn.Set("autoload_known_extensions", "false")
	dsn.Set("enable_external_file_cache", "false")
	connector, err := duckdb.NewConnector("?"+dsn.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("sql engine: open DuckDB: %w", err)
	}
	e.db = sql.OpenDB(connector)
	// Settings below are global, but a second pooled connection would be a
	// second session: keep exactly one.
	e.db.SetMaxOpenConns(1)
	e.db.SetMaxIdleConns(1)
	e.db.SetConnMaxLifetime(0)
	if e.conn, err = e.db.Conn(ctx); err != nil {
		return nil, fmt.Errorf("sql engine: connect: %w", err)
	}

	var allowed []string
	for _, in := range cfg.Inputs {
		for _, f := range in.Files {
			allowed = append(allowed, quoteString(f.Path))
		}
	}
	for _, m := range e.slots {
		allowed = append(allowed, quoteString(m.Path()))
	}
	setup := []string{
		"SET allowed_paths = [" + strings.Join(allowed, ", ") + "]",
		"SET allowed_directories = []",
		"SET enable_external_access = false",
	}
	for _, s := range setup {
		if _, err := e.conn.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("sql engine: lock down DuckDB (%s): %w", s, err)
		}
	}
	for _, in := range cfg.Inputs {
		if err := e.createTable(ctx, in); err != nil {
			return nil, err
		}
	}
	if _, err := e.conn.ExecContext(ctx, "SET lock_configuration = true"); err != nil {
		return nil, fmt.Errorf("sql engine: lock configuration: %w", err)
	}
	ok = true
	return e, nil
}

// Close releases DuckDB and the output buffers.
func (e *Engine) Close() error {
	var errs []error
	if e.conn != nil {
		errs = append(errs, e.conn.Close())
		e.conn = nil
	}
	if e.db != nil {
		errs = append(errs, e.db.Close())
		e.db = nil
	}
	for _, m := range e.slots {
		m.Close()
	}
	e.slots = nil
	return errors.Join(errs...)
}

// Setting returns the current value of a DuckDB setting, for diagnostics
// and tests.
func (e *Engine) Setting(ctx context.Context, name string) (string, error) {
	var v sql.NullString
	err := e.conn.QueryRowContext(ctx, "SELECT current_setting(?)::VARCHAR", name).Scan(&v)
	return v.String, err
}

// MemoryError is returned when a statement needed more memory than the
// job's limit. With spilling disabled DuckDB cannot fall back to disk.
type MemoryError struct {
	Limit int64
	Err   error // DuckDB's own message
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("query exceeded the job's memory limit of %s", formatBytes(e.Limit))
}

func (e *MemoryError) Unwrap() error { return e.Err }

// classify turns DuckDB's out-of-memory error into a MemoryError and passes
// every other error (syntax, binder, catalog...) through with DuckDB's
// message.
func (e *Engine) classify(err error) error {
	if err == nil {
		return nil
	}
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeOutOfMemory {
		return &MemoryError{Limit: e.limit, Err: err}
	}
	return err
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(suffix)-1 {
		v /= unit
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), suffix[i])
	}
	return fmt.Sprintf("%.1f %s", v, suffix[i])
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
