// Package tpchbench measures the SQL engine on encrypted TPC-H data against
// the same data in plaintext, in one run (`ppml bench tpch`). The encrypted
// side does what a sql job does: decrypt each envelope-encrypted Parquet file
// into a sealed memfd, open the locked-down engine over them, run the
// queries; its total includes the decryption. The plaintext side opens the
// same engine, with the same settings, over the plaintext Parquet files, so
// the ratio is the cost of encryption alone.
package tpchbench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ppml/ppml/engine/sql/sqldb"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/memfd"
	"github.com/ppml/ppml/tpch"
	"github.com/ppml/ppml/tpch/dbgen"
	"github.com/ppml/ppml/tpch/tpchparquet"
)

// Config is one benchmark run.
type Config struct {
	SF      float64
	Dir     string // scratch directory for the generated files (the caller removes it)
	Threads int    // DuckDB threads on both sides
	Memory  int64  // DuckDB memory limit on both sides, bytes
	// AnswersDir holds sf0.01, sf0.1 and sf1 answer directories (DuckDB's
	// and TPC's answers, see tpch); results are checked when SF is one of
	// those.
	AnswersDir string
	Queries    []int // default: 1..22
	// Rounds runs each query this many times on each side (alternating);
	// the fastest run counts, which filters out other processes' noise.
	// Results are checked on every run. Default 1.
	Rounds int
	Log    io.Writer // progress lines; nil discards
}

// Query is one query's measurement.
type Query struct {
	Query     int     `json:"query"`
	Encrypted float64 `json:"encrypted_seconds"`
	Plain     float64 `json:"plain_seconds"`
	Ratio     float64 `json:"ratio"`
	Rows      int     `json:"rows"`
	Checked   bool    `json:"checked"`
}

// Report is the result of a run.
type Report struct {
	SF              float64 `json:"sf"`
	Threads         int     `json:"threads"`
	MemoryBytes     int64   `json:"memory_bytes"`
	DataBytes       int64   `json:"parquet_bytes"`
	GenerateSeconds float64 `json:"generate_seconds"`
	// DecryptSeconds is the envelope decryption into memfds and OpenSeconds
	// opening the engine (lockdown and views); both count in EncryptedTotal.
	DecryptSeconds      float64 `json:"decrypt_seconds"`
	OpenSeconds         float64 `json:"open_encrypted_seconds"`
	OpenPlainSeconds    float64 `json:"open_plain_seconds"`
	Queries             []Query `json:"queries"`
	EncryptedTotal      float64 `json:"encrypted_total_seconds"`
	PlainTotal          float64 `json:"plain_total_seconds"`
	Ratio               float64 `json:"ratio"`
	QueryRatio          float64 `json:"query_only_ratio"`
	Checked             bool    `json:"checked"`
	Rounds              int     `json:"rounds"`
	LoadAverageAtFinish string  `json:"load_average,omitempty"`
}

// AnswerSet names the answer directory of a scale factor, "" if none.
func AnswerSet(sf float64) string {
	switch sf {
	case 0.01:
		return "sf0.01"
	case 0.1:
		return "sf0.1"
	case 1:
		return "sf1"
	}
	return ""
}

// Run generates the data, then runs every query on both sides, alternating
// which side goes first from one query to the next.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	if cfg.Threads < 1 || cfg.Memory <= 0 {
		return nil, fmt.Errorf("tpch bench: threads (%d) and memory (%d) must be positive", cfg.Threads, cfg.Memory)
	}
	queries := cfg.Queries
	if len(queries) == 0 {
		for n := 1; n <= tpch.NumQueries; n++ {
			queries = append(queries, n)
		}
	}
	var answers map[int]*tpch.Answer
	if set := AnswerSet(cfg.SF); set != "" {
		answers = map[int]*tpch.Answer{}
		for _, n := range queries {
			a, err := tpch.ReadAnswerFile(filepath.Join(cfg.AnswersDir, set, fmt.Sprintf("q%02d.csv", n)))
			if err != nil {
				return nil, fmt.Errorf("TPC-H answers for SF %g (give the directory with --answers): %w", cfg.SF, err)
			}
			answers[n] = a
		}
	}
	rounds := max(cfg.Rounds, 1)
	rep := &Report{SF: cfg.SF, Threads: cfg.Threads, MemoryBytes: cfg.Memory, Checked: answers != nil, Rounds: rounds}

	g, err := dbgen.New(cfg.SF)
	if err != nil {
		return nil, err
	}
	plainDir, encDir := filepath.Join(cfg.Dir, "plain"), filepath.Join(cfg.Dir, "encrypted")
	for _, d := range []string{plainDir, encDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logf("generating TPC-H SF %g (plaintext Parquet, then envelope-encrypted copies under a fresh key)", cfg.SF)
	start := time.Now()
	files, err := tpchparquet.WriteDir(ctx, g, plainDir, nil, tpchparquet.DirOptions{})
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	key, err := envelope.NewLocalKey(secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	encPaths := map[dbgen.Table]string{}
	for _, f := range files {
		rep.DataBytes += f.Bytes
		p := filepath.Join(encDir, filepath.Base(f.Path)+".ppml")
		if err := encryptFile(f.Path, p, key); err != nil {
			return nil, err
		}
		encPaths[f.Table] = p
	}
	rep.GenerateSeconds = time.Since(start).Seconds()
	logf("generated %d files, %d bytes of Parquet, in %.1fs", len(files), rep.DataBytes, rep.GenerateSeconds)

	// The plaintext side opens the same engine (same DSN settings, lockdown,
	// views and query path) over the plaintext files, so that the two sides
	// differ only in where the bytes come from: a regular file here, a memfd
	// after decryption there. A bare DuckDB connection with other settings
	// (external file cache on, a temp directory, a pooled *sql.DB) measured
	// something else as well.
	start = time.Now()
	var plainInputs []sqldb.Input
	byTable := map[dbgen.Table]string{}
	for _, f := range files {
		byTable[f.Table] = f.Path
	}
	for _, t := range dbgen.Tables {
		if p, ok := byTable[t]; ok {
			plainInputs = append(plainInputs, sqldb.Input{Name: t.String(), Format: sqldb.Parquet,
				Files: []sqldb.File{{Path: p, Name: filepath.Base(p)}}})
		}
	}
	plain, err := sqldb.Open(ctx, sqldb.Config{MemoryLimit: cfg.Memory, Threads: cfg.Threads, Inputs: plainInputs})
	if err != nil {
		return nil, fmt.Errorf("plain side: %w", err)
	}
	defer plain.Close()
	rep.OpenPlainSeconds = time.Since(start).Seconds()

	// The engine: decrypt into memfds, open locked down.
	start = time.Now()
	var inputs []sqldb.Input
	var mems []*memfd.File
	defer func() {
		for _, m := range mems {
			m.Close()
		}
	}()
	for _, t := range dbgen.Tables {
		p, ok := encPaths[t]
		if !ok {
			continue
		}
		m, err := memfd.Decrypt(p, key)
		if err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", filepath.Base(p), err)
		}
		mems = append(mems, m)
		inputs = append(inputs, sqldb.Input{Name: t.String(), Format: sqldb.Parquet,
			Files: []sqldb.File{{Path: m.Path(), Name: filepath.Base(p)}}})
	}
	rep.DecryptSeconds = time.Since(start).Seconds()
	start = time.Now()
	eng, err := sqldb.Open(ctx, sqldb.Config{MemoryLimit: cfg.Memory, Threads: cfg.Threads, Inputs: inputs})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	rep.OpenSeconds = time.Since(start).Seconds()
	logf("decrypted into memory in %.2fs, engine opened in %.2fs", rep.DecryptSeconds, rep.OpenSeconds)

	var encQueries, plainQueries float64
	for i, n := range queries {
		text, err := tpch.Query(n)
		if err != nil {
			return nil, err
		}
		q := Query{Query: n}
		runEnc := func() error {
			t0 := time.Now()
			rows, err := eng.Rows(ctx, text)
			if err != nil {
				return fmt.Errorf("q%02d on the engine: %w", n, err)
			}
			res, err := tpch.Collect(rows)
			if err != nil {
				return fmt.Errorf("q%02d on the engine: %w", n, err)
			}
			if d := time.Since(t0).Seconds(); q.Encrypted == 0 || d < q.Encrypted {
				q.Encrypted = d
			}
			q.Rows = len(res.Rows)
			if a := answers[n]; a != nil {
				if err := tpch.Compare(a, res, tpch.CompareOptions{}); err != nil {
					return fmt.Errorf("q%02d on the engine: wrong result: %w", n, err)
				}
			}
			return nil
		}
		runPlain := func() error {
			t0 := time.Now()
			rows, err := plain.Rows(ctx, text)
			if err != nil {
				return fmt.Errorf("q%02d on the plaintext files: %w", n, err)
			}
			res, err := tpch.Collect(rows)
			if err != nil {
				return fmt.Errorf("q%02d on the plaintext files: %w", n, err)
			}
			if d := time.Since(t0).Seconds(); q.Plain == 0 || d < q.Plain {
				q.Plain = d
			}
			if a := answers[n]; a != nil {
				if err := tpch.Compare(a, res, tpch.CompareOptions{}); err != nil {
					return fmt.Errorf("q%02d on the plaintext files: wrong result: %w", n, err)
				}
			}
			return nil
		}
		for r := range rounds {
			order := []func() error{runEnc, runPlain}
			if (i+r)%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, f := range order {
				if err := f(); err != nil {
					return nil, err
				}
			}
		}
		q.Checked = answers != nil
		q.Ratio = ratio(q.Encrypted, q.Plain)
		encQueries += q.Encrypted
		plainQueries += q.Plain
		rep.Queries = append(rep.Queries, q)
		logf("q%02d  encrypted %8.3fs  plain %8.3fs  ratio %5.2f", n, q.Encrypted, q.Plain, q.Ratio)
	}
	rep.EncryptedTotal = rep.DecryptSeconds + rep.OpenSeconds + encQueries
	rep.PlainTotal = rep.OpenPlainSeconds + plainQueries
	rep.Ratio = ratio(rep.EncryptedTotal, rep.PlainTotal)
	rep.QueryRatio = ratio(encQueries, plainQueries)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAverageAtFinish = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return rep, nil
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func encryptFile(from, to string, key *envelope.LocalKey) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	w, err := envelope.CreateFile(to, key, &envelope.Options{ContentType: envelope.TypeParquet, Size: fi.Size(), SizeKnown: true}, false)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		w.Abort()
		return fmt.Errorf("encrypt %s: %w", filepath.Base(from), err)
	}
	return w.Close()
}

// DefaultAnswersDir is where the published answers are when no directory is
// given: $PPML_SHARED/testdata/tpch/answers, else, for a binary built from a
// source tree that is still in place (go run, go build without -trimpath),
// <repo>/../shared/testdata/tpch/answers as the tests find it. It returns ""
// when neither exists, so that the caller can ask for --answers.
func DefaultAnswersDir() string {
	if d := os.Getenv("PPML_SHARED"); d != "" {
		return filepath.Join(d, "testdata", "tpch", "answers")
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "" // built with -trimpath: no source tree to look beside
	}
	repo := filepath.Dir(filepath.Dir(filepath.Dir(file))) // bench/tpch/tpchbench.go
	d := filepath.Join(filepath.Dir(repo), "shared", "testdata", "tpch", "answers")
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		return ""
	}
	return d
}
