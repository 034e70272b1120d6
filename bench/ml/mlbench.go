// Package mlbench compares XGBoost training through the ml engine, from an encrypted input
// decrypted into a memfd, with the same training in Debian's python3-xgboost on the same data
// in plaintext (xgboost-train-bench.py, embedded). It is what ppml bench ml runs.
package mlbench

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	mlengine "github.com/ppml/ppml/engine/ml"
	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/memfd"
	"github.com/ppml/ppml/ml/synth"
	"github.com/ppml/ppml/ml/xgboost"
)

// Config sets the benchmark's size.
type Config struct {
	Rows, Cols, Rounds, MaxDepth int
	Python                       string // interpreter, default /usr/bin/python3
	Script                       string // default: the embedded xgboost-train-bench.py
	TempDir                      string // default: os.TempDir()
}

// Result holds the measurements. Times are in seconds.
type Result struct {
	Rows, Cols, Rounds, MaxDepth int
	XGBoostVersion               string  `json:"xgboost_version"`
	EncryptedBytes               int64   `json:"encrypted_bytes"`
	DecryptSeconds               float64 `json:"decrypt_seconds"`      // envelope → memfd
	EngineSeconds                float64 `json:"engine_seconds"`       // whole engine job: read Parquet, build DMatrix, train, save model
	EngineTrainSeconds           float64 `json:"engine_train_seconds"` // XGBoost training call alone
	EngineTrainCPUSeconds        float64 `json:"engine_train_cpu_seconds"`
	PythonTrainSeconds           float64 `json:"python_train_seconds"` // xgb.train alone
	PythonTrainCPUSeconds        float64 `json:"python_train_cpu_seconds"`
	// Ratio is engine training time over Python training time (target ≤ 1.10); CPURatio the
	// same in CPU seconds, which neighbours on a shared machine disturb less.
	Ratio    float64 `json:"ratio"`
	CPURatio float64 `json:"cpu_ratio"`
	// EndToEndRatio is (decrypt + whole engine job) over Python's training alone.
	EndToEndRatio float64 `json:"end_to_end_ratio"`
}

// script is the Python side: it trains python3-xgboost on the same bytes.
// It is embedded so that a binary built anywhere (-trimpath) runs it.
//
//go:embed xgboost-train-bench.py
var script []byte

// Run runs both trainings once.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Rows < 10 || cfg.Cols < 1 || cfg.Rounds < 1 || cfg.MaxDepth < 1 {
		return nil, fmt.Errorf("bench ml: rows %d, cols %d, rounds %d, depth %d out of range", cfg.Rows, cfg.Cols, cfg.Rounds, cfg.MaxDepth)
	}
	if cfg.Python == "" {
		cfg.Python = "/usr/bin/python3"
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "ppml-bench-ml-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if cfg.Script == "" {
		cfg.Script = filepath.Join(dir, "xgboost-train-bench.py")
		if err := os.WriteFile(cfg.Script, script, 0o600); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(cfg.Script); err != nil {
		return nil, fmt.Errorf("bench ml: python benchmark script: %w", err)
	}

	x, y := synth.Regression(cfg.Rows, cfg.Cols, 1)
	res := &Result{Rows: cfg.Rows, Cols: cfg.Cols, Rounds: cfg.Rounds, MaxDepth: cfg.MaxDepth}
	maj, mnr, pat := xgboost.Version()
	res.XGBoostVersion = fmt.Sprintf("%d.%d.%d", maj, mnr, pat)

	// The engine's input: the table as Parquet, encrypted with a fresh local key. The
	// plaintext Parquet exists only in memory.
	secret := make([]byte, envelope.LocalKeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	key, err := envelope.NewLocalKey(secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	encPath := filepath.Join(dir, "synthetic.parquet.ppml")
	if err := writeEncryptedParquet(encPath, key, x, y, cfg.Rows, cfg.Cols); err != nil {
		return nil, fmt.Errorf("bench ml: encrypted input: %w", err)
	}
	if fi, err := os.Stat(encPath); err == nil {
		res.EncryptedBytes = fi.Size()
	}
	// Python's input: the same float32 values, raw, in plaintext.
	xp, yp := filepath.Join(dir, "x.f32"), filepath.Join(dir, "y.f32")
	if err := writeF32(xp, x); err != nil {
		return nil, err
	}
	if err := writeF32(yp, y); err != nil {
		return nil, err
	}
	x, y = nil, nil

	t0 := time.Now()
	m, err := memfd.Decrypt(encPath, key)
	if err != nil {
		return nil, fmt.Errorf("bench ml: decrypt: %w", err)
	}
	defer m.Close()
	res.DecryptSeconds = time.Since(t0).Seconds()
	spec := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Regression, Label: "y",
		Rounds: cfg.Rounds, Params: []mlspec.Param{{Name: "max_depth", Value: strconv.Itoa(cfg.MaxDepth)}}}
	t1 := time.Now()
	er, err := mlengine.Run(ctx, mlengine.Config{Threads: 1}, spec,
		map[string]mlengine.Input{mlspec.InputTrain: {Path: m.Path(), Format: mlspec.Parquet}},
		map[string]mlengine.Output{mlspec.OutputModel: {W: discard{}}})
	if err != nil {
		return nil, fmt.Errorf("bench ml: engine: %w", err)
	}
	res.EngineSeconds = time.Since(t1).Seconds()
	res.EngineTrainSeconds, res.EngineTrainCPUSeconds = er.TrainTime.Seconds(), er.TrainCPU.Seconds()
	m.Close()
	runtime.GC()

	out, err := exec.CommandContext(ctx, cfg.Python, cfg.Script, xp, yp, strconv.Itoa(cfg.Rows), strconv.Itoa(cfg.Cols),
		strconv.Itoa(cfg.Rounds), strconv.Itoa(cfg.MaxDepth)).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("bench ml: python: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("bench ml: python: %w", err)
	}
	var py struct {
		Train   float64 `json:"train_seconds"`
		CPU     float64 `json:"train_cpu_seconds"`
		Version string  `json:"version"`
	}
	if err := json.Unmarshal(out, &py); err != nil {
		return nil, fmt.Errorf("bench ml: python output %q: %w", out, err)
	}
	res.PythonTrainSeconds, res.PythonTrainCPUSeconds = py.Train, py.CPU
	res.Ratio = res.EngineTrainSeconds / py.Train
	res.CPURatio = res.EngineTrainCPUSeconds / py.CPU
	res.EndToEndRatio = (res.DecryptSeconds + res.EngineSeconds) / py.Train
	return res, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func writeF32(path string, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return os.WriteFile(path, b, 0o600)
}

// writeEncryptedParquet writes columns x0…x{cols-1} and y (float32) as Parquet straight into
// an envelope.
func writeEncryptedParquet(path string, key *envelope.LocalKey, x, y []float32, rows, cols int) error {
	fw, err := envelope.CreateFile(path, key, &envelope.Options{ContentType: envelope.TypeParquet}, false)
	if err != nil {
		return err
	}
	defer fw.Abort()
	fields := make([]arrow.Field, cols+1)
	for j := range cols {
		fields[j] = arrow.Field{Name: "x" + strconv.Itoa(j), Type: arrow.PrimitiveTypes.Float32}
	}
	fields[cols] = arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Float32}
	schema := arrow.NewSchema(fields, nil)
	pw, err := pqarrow.NewFileWriter(schema, fw, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	const batch = 1 << 17
	for start := 0; start < rows; start += batch {
		n := min(batch, rows-start)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for j := range cols {
			fb := b.Field(j).(*array.Float32Builder)
			fb.Reserve(n)
			for i := start; i < start+n; i++ {
				fb.UnsafeAppend(x[i*cols+j])
			}
		}
		b.Field(cols).(*array.Float32Builder).AppendValues(y[start:start+n], nil)
		rec := b.NewRecordBatch()
		err := pw.Write(rec)
		rec.Release()
		b.Release()
		if err != nil {
			return err
		}
	}
	if err := pw.Close(); err != nil {
		return err
	}
	return fw.Close()
}
