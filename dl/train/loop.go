package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/internal/usage"
	"github.com/ppml/ppml/ml/split"
)

// NewModel builds the torch model of an architecture with the given tensors.
func NewModel(c arch.Config, ts []arch.Tensor, threads int) (*torch.Model, error) {
	return newModel(c, c.Source(), ts, threads)
}

// NewLogitsModel is NewModel with a forward that returns the last layer's output, before the
// log-softmax (arch.Config.LogitsSource).
func NewLogitsModel(c arch.Config, ts []arch.Tensor, threads int) (*torch.Model, error) {
	return newModel(c, c.LogitsSource(), ts, threads)
}

func newModel(c arch.Config, source string, ts []arch.Tensor, threads int) (*torch.Model, error) {
	s := torch.Spec{Class: c.Class(), Source: source}
	for _, m := range c.Submodules() {
		s.Submodules = append(s.Submodules, torch.Submodule{Name: m.Name, Class: m.Class})
	}
	for _, t := range ts {
		s.Params = append(s.Params, torch.Param{Name: t.Name, Shape: t.Shape, Data: t.Data, Buffer: t.Buffer})
	}
	return torch.NewModel(s, threads)
}

// Tensors reads the model's current tensors (in the architecture's order).
func Tensors(m *torch.Model, c arch.Config) ([]arch.Tensor, error) {
	var out []arch.Tensor
	for _, s := range c.Shapes() {
		d := make([]float32, torch.Numel(s.Dims))
		if err := m.Get(s.Name, d); err != nil {
			return nil, err
		}
		out = append(out, arch.Tensor{Name: s.Name, Shape: s.Dims, Data: d, Buffer: s.Buffer})
	}
	return out, nil
}

// Options of a training run.
type Options struct {
	Epochs    int
	BatchSize int
	Seed      uint64
	// Progress, when set, is called after every batch.
	Progress func(epoch, batch, batches int, loss float64)
	// Step, when set, lowers the learning rate between epochs.
	Step *StepLR
}

// StepLR is PyTorch's torch.optim.lr_scheduler.StepLR: every Every epochs the learning rate
// (starting at Base, the optimizer's) is multiplied by Gamma, as that scheduler does it (one
// multiplication per step, so the rates are the same floating-point numbers).
type StepLR struct {
	Base  float64
	Every int
	Gamma float64
}

// Result of a training run.
type Result struct {
	EpochLoss []float64 // mean batch loss of each epoch
	Steps     int
	Time      time.Duration
	// CPU is the process's CPU time during the loop (user and system, all threads): on a shared
	// machine it varies less than Time.
	CPU time.Duration
}

// DivergedError is a training run whose loss became NaN or infinite.
type DivergedError struct {
	Epoch, Batch, Batches int // 1-based
	Loss                  float64
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("training diverged: the loss is %v at epoch %d, batch %d of %d (lower learning_rate, or check the data for extreme values)",
		e.Loss, e.Epoch, e.Batch, e.Batches)
}

// shuffleStream is the split.Source stream of epoch 0's order (epoch e uses 2+e).
const shuffleStream = 2

// Fit trains m (whose optimizer is set) on d for o.Epochs epochs.
func Fit(ctx context.Context, m *torch.Model, d Data, o Options) (*Result, error) {
	n := d.Len()
	labels := d.Labels()
	if labels == nil || len(labels) != n {
		return nil, errors.New("train: the training data has no labels")
	}
	if o.Epochs < 1 || o.BatchSize < 1 {
		return nil, fmt.Errorf("train: %d epochs of batches of %d", o.Epochs, o.BatchSize)
	}
	batches := (n + o.BatchSize - 1) / o.BatchSize
	res := &Result{}
	t0, c0 := time.Now(), usage.CPUTime()
	y := make([]int64, 0, o.BatchSize)
	lr := 0.0
	if o.Step != nil {
		if o.Step.Every < 1 || !(o.Step.Gamma > 0) || !(o.Step.Base > 0) {
			return nil, fmt.Errorf("train: learning rate %v times %v every %d epochs", o.Step.Base, o.Step.Gamma, o.Step.Every)
		}
		lr = o.Step.Base
	}
	for e := range o.Epochs {
		if o.Step != nil && e > 0 && e%o.Step.Every == 0 {
			lr *= o.Step.Gamma
			if err := m.SetLearningRate(lr); err != nil {
				return nil, fmt.Errorf("epoch %d: %w", e+1, err)
			}
		}
		perm := split.Shuffle(n, o.Seed, shuffleStream+uint64(e))
		var sum float64
		for b := range batches {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rows := perm[b*o.BatchSize : min((b+1)*o.BatchSize, n)]
			in, err := d.Batch(rows)
			if err != nil {
				return nil, err
			}
			y = y[:0]
			for _, r := range rows {
				y = append(y, labels[r])
			}
			loss, err := m.TrainStep(y, in...)
			if err != nil {
				return nil, fmt.Errorf("epoch %d, batch %d: %w", e+1, b+1, err)
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, &DivergedError{Epoch: e + 1, Batch: b + 1, Batches: batches, Loss: loss}
			}
			sum += loss
			res.Steps++
			if o.Progress != nil {
				o.Progress(e+1, b+1, batches, loss)
			}
		}
		res.EpochLoss = append(res.EpochLoss, sum/float64(batches))
	}
	res.Time, res.CPU = time.Since(t0), usage.CPUTime()-c0
	return res, nil
}

// Predict returns the class probabilities of every row of d (rows × classes, row-major),
// computed in batches of batchSize.
func Predict(ctx context.Context, m *torch.Model, d Data, classes, batchSize int) ([]float64, error) {
	n := d.Len()
	if batchSize < 1 {
		return nil, fmt.Errorf("predict: batches of %d", batchSize)
	}
	probs := make([]float64, 0, n*classes)
	rows := make([]int, 0, batchSize)
	out := make([]float32, batchSize*classes)
	for start := 0; start < n; start += batchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows = rows[:0]
		for r := start; r < min(start+batchSize, n); r++ {
			rows = append(rows, r)
		}
		in, err := d.Batch(rows)
		if err != nil {
			return nil, err
		}
		o := out[:len(rows)*classes]
		if err := m.Forward(o, len(rows), classes, in...); err != nil {
			return nil, fmt.Errorf("rows %d to %d: %w", start+1, start+len(rows), err)
		}
		for _, lp := range o {
			probs = append(probs, math.Exp(float64(lp)))
		}
	}
	return probs, nil
}

func sqrt(v float64) float64 { return math.Sqrt(v) }
