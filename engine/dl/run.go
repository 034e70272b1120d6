// Package dlengine is the dl engine: it trains LeNet-5, an MLP or a text classifier on
// libtorch (package dl/torch) from IDX image files or tables, applies a model to new data and
// evaluates it. The launcher calls Run with the inputs it decrypted into memory and the output
// memfds it will encrypt; nothing is written to any output unless the whole job succeeds.
// Parameters: engine/dl/dlspec and docs/dl.md; model files: docs/formats/dl-model.md.
package dlengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/engine/dl/dlspec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/ml/metrics"
)

// Output is one output of a job.
type Output struct{ W io.Writer }

// Config is what the caller supplies besides the job.
type Config struct {
	// Threads for libtorch (≤ 0 means 1).
	Threads int
	// Memory bounds the job's tensors, the engine's buffers and the decrypted inputs (0: no
	// bound).
	Memory int64
	// JobDigest ("sha256:<hex>") of the training job, recorded in the model.
	JobDigest string
	// Logf, when set, receives progress lines (counts and losses, never data).
	Logf func(format string, args ...any)
}

// Result describes a finished job.
type Result struct {
	Task   dlspec.Task
	Rows   int // rows trained on, predicted or evaluated
	Report *Report
	// TrainTime is the training loop alone; PredictTime the batched forward passes of predict,
	// evaluate or the test metrics of a train job.
	TrainTime   time.Duration
	TrainCPU    time.Duration
	PredictTime time.Duration
	PeakMemory  int64 // bytes counted against the memory limit, at most
}

// MemoryError is a job that needed more memory than resources.memory allows.
type MemoryError struct {
	Limit int64
	Err   *torch.MemoryLimitError
}

func (e *MemoryError) Error() string {
	// The allocator's own line, without the TorchScript traceback libtorch wraps around it.
	msg := e.Err.Message
	if i := strings.Index(msg, "ppml memory limit"); i >= 0 {
		msg = msg[i:]
		if j := strings.IndexByte(msg, '\n'); j >= 0 {
			msg = msg[:j]
		}
	}
	return fmt.Sprintf("dl job: the job needs more memory than resources.memory (%s) allows: %s (%s); raise resources.memory or lower batch_size",
		job.FormatSize(e.Limit), msg, e.Err.Op)
}

func (e *MemoryError) Unwrap() error { return e.Err }

// Run runs one dl job.
func Run(ctx context.Context, cfg Config, p *dlspec.Params, inputs map[string]Input, outputs map[string]Output) (res *Result, err error) {
	if cfg.Threads <= 0 {
		cfg.Threads = 1
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.JobDigest != "" && !digestRE.MatchString(cfg.JobDigest) {
		return nil, fmt.Errorf("dl job: job digest %q is not sha256:<64 hex digits>", clip(cfg.JobDigest))
	}
	var ins, outs []string
	for n := range inputs {
		ins = append(ins, n)
	}
	for n, o := range outputs {
		if o.W == nil {
			return nil, fmt.Errorf("dl job: output %q has no writer", n)
		}
		outs = append(outs, n)
	}
	if err := p.CheckNames(ins, outs); err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	for name, in := range inputs {
		if name == dlspec.InputTrain || name == dlspec.InputData {
			if in.Format == "" {
				return nil, fmt.Errorf("dl job: input %s: the table format is not known (encrypt it with --type csv or parquet)", name)
			}
		}
	}

	// The memory limit covers the decrypted inputs too: they are in memory already.
	var b budget
	torch.SetMemoryLimit(cfg.Memory)
	torch.ResetMemoryPeak()
	defer func() {
		b.release()
		if res != nil {
			res.PeakMemory = torch.MemoryPeak()
		}
		torch.SetMemoryLimit(0)
		var me *torch.MemoryLimitError
		if errors.As(err, &me) {
			err = &MemoryError{Limit: cfg.Memory, Err: me}
		}
	}()
	var total int64
	for _, in := range inputs {
		_, size, done, err := in.open()
		if err != nil {
			return nil, err
		}
		done()
		total += size
	}
	if err := b.reserve("decrypted inputs", total); err != nil {
		return nil, err
	}
	if p.Task == dlspec.Train {
		return runTrain(ctx, cfg, p, inputs, outputs, &b)
	}
	return runApply(ctx, cfg, p, inputs, outputs, &b)
}

// score computes classification metrics from probabilities (rows × classes).
func score(y []int64, probs []float64, classes int) (*metrics.Classification, error) {
	yf := make([]float64, len(y))
	for i, v := range y {
		yf[i] = float64(v)
	}
	if classes == 2 {
		p1 := make([]float64, len(y))
		for i := range p1 {
			p1[i] = probs[2*i+1]
		}
		return metrics.EvaluateBinary(yf, p1)
	}
	return metrics.EvaluateMulticlass(yf, probs, classes)
}

// predictTimed runs batched prediction and measures it.
func predictTimed(ctx context.Context, m *torch.Model, d train.Data, classes, batch int, res *Result) ([]float64, error) {
	t0 := time.Now()
	p, err := train.Predict(ctx, m, d, classes, batch)
	res.PredictTime += time.Since(t0)
	return p, err
}

// writeAll writes each buffer to its output, in a fixed order.
func writeAll(outputs map[string]Output, bufs map[string][]byte) error {
	for _, name := range []string{dlspec.OutputModel, dlspec.OutputStateDict, dlspec.OutputReport, dlspec.OutputPredictions} {
		b, ok := bufs[name]
		if !ok {
			continue
		}
		if o, ok := outputs[name]; ok {
			if _, err := o.W.Write(b); err != nil {
				return fmt.Errorf("dl job: write %s: %w", name, err)
			}
		}
	}
	return nil
}
