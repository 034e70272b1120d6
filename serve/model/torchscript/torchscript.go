// Package torchscript serves the dl engine's models — LeNet-5, MLPs and text classifiers, as
// TorchScript archives or state dicts with ppml's metadata (docs/formats/dl-model.md) — through
// the serving model interface, computing on libtorch (package dl/torch).
//
// A model file is untrusted: it is read as data by dl/modelfile (package dl/ptfile underneath),
// never by torch::jit::load, and only its tensors are kept. They must match a built-in
// architecture exactly; the model is rebuilt from ppml's own TorchScript for that architecture
// (package dl/arch), so a file cannot bring code or change the computation.
//
// Inputs, by what the model reads:
//
//	images  "input"  FP32   [-1, 1, height, width]  pixels / 255, as the TorchScript file takes them
//	table   "input"  FP32   [-1, features]          the feature columns in the model's order
//	text    "text"   BYTES  [-1]                    UTF-8 texts, tokenized with the model's vocabulary
//
// Outputs: "probability" FP32 [-1, classes] (the exponent of the model's log-probabilities) and
// "prediction" INT64 [-1] (the most probable class, the lowest on ties), as the dl engine's
// predict task writes them.
//
// Concurrency and memory: libtorch keeps per-thread state, so each torch.Model runs on its own
// OS thread; a Model holds Threads instances (one intra-op thread each) in a pool, and a call
// waits for a free one. A call computes at most MaxRows rows at a time, so working memory is
// bounded by instances × MaxRows rows of activations, whatever the request size.
package torchscript

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"runtime"
	"unicode/utf8"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/modelfile"
	"github.com/ppml/ppml/dl/text"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

// Platform is the metadata's platform: the name Triton gives TorchScript models.
const Platform = "pytorch_libtorch"

// Input and output names.
const (
	InputName   = "input"
	TextName    = "text"
	Probability = "probability"
	Prediction  = "prediction"
)

// DefaultMaxRows is the rows one forward pass computes when Options.MaxRows is not set.
const DefaultMaxRows = 256

func init() {
	model.RegisterBackend(model.Backend{
		Name:   "torchscript",
		Detect: func(b []byte) bool { return bytes.HasPrefix(b, []byte("PK\x03\x04")) },
		Load: func(b []byte, opt model.LoadOptions) (model.Model, error) {
			m, err := Load(b, Options{Name: opt.Name, Version: opt.Version, Threads: opt.Threads, MaxRows: max(opt.MaxBatch, DefaultMaxRows)})
			if err != nil {
				return nil, err
			}
			return m, nil
		},
	})
}

// Options name the served model and size its pool.
type Options struct {
	Name, Version string
	// Threads is the number of model instances, the predictions that run at once (≤ 0:
	// GOMAXPROCS).
	Threads int
	// MaxRows bounds the rows of one forward pass (≤ 0: DefaultMaxRows).
	MaxRows int
}

// Model is a loaded dl model.
type Model struct {
	meta    model.Metadata
	file    *modelfile.Meta
	classes int
	vocab   *text.Vocabulary
	maxRows int
	pool    chan *torch.Model
	all     []*torch.Model
}

// Load reads a model file from untrusted bytes and builds its instances.
func Load(file []byte, opt Options) (*Model, error) {
	f, err := modelfile.DecodeModel(file, "")
	if err != nil {
		return nil, fmt.Errorf("dl model: %w", err)
	}
	meta := f.Meta
	c := meta.Architecture
	m := &Model{file: meta, classes: c.Classes, maxRows: opt.MaxRows}
	if m.maxRows <= 0 {
		m.maxRows = DefaultMaxRows
	}
	m.meta = model.Metadata{Name: opt.Name, Version: opt.Version, Platform: Platform, Batchable: true,
		Outputs: []model.TensorSpec{{Name: Probability, DataType: tensor.FP32, Shape: []int64{-1, int64(c.Classes)}},
			{Name: Prediction, DataType: tensor.Int64, Shape: []int64{-1}}}}
	switch meta.Input.Kind {
	case modelfile.InputImages:
		m.meta.Inputs = []model.TensorSpec{{Name: InputName, DataType: tensor.FP32,
			Shape: []int64{-1, 1, int64(meta.Input.Height), int64(meta.Input.Width)}}}
	case modelfile.InputTable:
		m.meta.Inputs = []model.TensorSpec{{Name: InputName, DataType: tensor.FP32, Shape: []int64{-1, int64(c.Inputs)}}}
		m.meta.Features = meta.Input.Features
	case modelfile.InputText:
		m.meta.Inputs = []model.TensorSpec{{Name: TextName, DataType: tensor.Bytes, Shape: []int64{-1}}}
		if m.vocab, err = text.NewVocabulary(meta.Vocabulary); err != nil {
			return nil, fmt.Errorf("dl model: %w", err)
		}
	default:
		return nil, fmt.Errorf("dl model: input kind %q", meta.Input.Kind)
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	m.pool = make(chan *torch.Model, threads)
	for range threads {
		tm, err := train.NewModel(c, f.Tensors, 1)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("dl model: %w", err)
		}
		m.all = append(m.all, tm)
		m.pool <- tm
	}
	return m, nil
}

// Metadata describes the model.
func (m *Model) Metadata() model.Metadata { return m.meta }

// File is the model file's metadata (architecture, training, metrics, training job digest).
func (m *Model) File() *modelfile.Meta { return m.file }

// Architecture is the model's architecture.
func (m *Model) Architecture() arch.Config { return m.file.Architecture }

// Close frees the instances. Calls still running finish first.
func (m *Model) Close() error {
	for _, tm := range m.all {
		tm.Close()
	}
	return nil
}

// Predict runs the model on in[0], checked against the metadata by the registry.
func (m *Model) Predict(ctx context.Context, in []tensor.Tensor) ([]tensor.Tensor, error) {
	x := in[0]
	rows := int(x.Shape[0])
	if err := m.check(x); err != nil {
		return nil, err
	}
	probs := make([]float32, rows*m.classes)
	if rows > 0 {
		var tm *torch.Model
		select {
		case tm = <-m.pool:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { m.pool <- tm }()
		for lo := 0; lo < rows; lo += m.maxRows {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			hi := min(lo+m.maxRows, rows)
			out := probs[lo*m.classes : hi*m.classes]
			if err := tm.Forward(out, hi-lo, m.classes, m.inputs(x, lo, hi)...); err != nil {
				return nil, fmt.Errorf("model %s: rows %d to %d: %w", m.meta.Name, lo, hi-1, err)
			}
		}
	}
	labels := make([]int64, rows)
	for i := range rows {
		row := probs[i*m.classes : (i+1)*m.classes]
		best := 0
		for k, lp := range row {
			if lp > row[best] {
				best = k
			}
		}
		labels[i] = int64(best)
		for k, lp := range row {
			row[k] = float32(math.Exp(float64(lp)))
		}
	}
	return []tensor.Tensor{
		{Name: Probability, DataType: tensor.FP32, Shape: []int64{int64(rows), int64(m.classes)}, F32: probs},
		{Name: Prediction, DataType: tensor.Int64, Shape: []int64{int64(rows)}, Ints: labels},
	}, nil
}

// check refuses values the model would turn into meaningless outputs.
func (m *Model) check(x tensor.Tensor) error {
	if x.DataType == tensor.Bytes {
		for i, b := range x.Bytes {
			if !utf8.Valid(b) {
				return fmt.Errorf("%w: input %q: text %d is not UTF-8", model.ErrInvalid, TextName, i)
			}
		}
		return nil
	}
	row := max(x.RowSize(), 1)
	for i, v := range x.F32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: input %q: row %d holds a value that is not a finite number (%v)", model.ErrInvalid, InputName, i/row, v)
		}
	}
	return nil
}

// inputs are the forward arguments for rows [lo, hi) of x.
func (m *Model) inputs(x tensor.Tensor, lo, hi int) []torch.Input {
	if m.vocab == nil {
		shape := append([]int64{int64(hi - lo)}, x.Shape[1:]...)
		n := x.RowSize()
		return []torch.Input{{F32: x.F32[lo*n : hi*n], Shape: shape}}
	}
	// EmbeddingBag's convention: every text's token ids in a row, and where each text starts.
	var tokens []int64
	offsets := make([]int64, hi-lo)
	for i := lo; i < hi; i++ {
		offsets[i-lo] = int64(len(tokens))
		tokens = m.vocab.Encode(tokens, string(x.Bytes[i]), m.file.Input.MaxTokens)
	}
	if tokens == nil {
		tokens = []int64{} // texts without tokens: empty bags
	}
	return []torch.Input{{I64: tokens, Shape: []int64{int64(len(tokens))}}, {I64: offsets, Shape: []int64{int64(hi - lo)}}}
}
