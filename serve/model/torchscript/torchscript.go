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
// A module saved by plain PyTorch, without ppml's metadata, is served as the job declares it
// (dl/declared): its input's name, datatype and shape, and besides probability and prediction
// the module's own output (logits, log-probabilities or probabilities, as its forward returns
// them) and, when the job names the classes, "label" BYTES [-1].
//
// Memory: with Options.MemoryLimit every tensor libtorch allocates counts against the job's
// resources.memory (dl/torch's counting allocator). A model is refused at load when its
// instances' weights, and the working memory a forward pass of MaxRows rows takes on each
// instance at once, would not fit beside the models loaded before it; a request that still
// meets the limit fails alone (unavailable) and the model keeps serving. A request's own
// tensors (its input, outputs and their copies) count too while it is computed: one that
// does not fit beside the models and their committed working memory is refused as
// unavailable before it is computed, and smaller ones are served.
//
// Concurrency and memory: libtorch keeps per-thread state, so each torch.Model runs on its own
// OS thread; a Model holds Threads instances (one intra-op thread each) in a pool, and a call
// waits for a free one. A call computes at most MaxRows rows at a time, so working memory is
// bounded by instances × MaxRows rows of activations, whatever the request size.
package torchscript

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/declared"
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
	Label       = "label"
)

// DefaultMaxRows is the rows one forward pass computes when Options.MaxRows is not set.
const DefaultMaxRows = 256

func init() {
	model.RegisterBackend(model.Backend{
		Name:   model.TorchScriptBackend,
		Detect: func(b []byte) bool { return bytes.HasPrefix(b, []byte("PK\x03\x04")) },
		Load: func(b []byte, opt model.LoadOptions) (model.Model, error) {
			m, err := Load(b, Options{Name: opt.Name, Version: opt.Version, Threads: opt.Threads, MaxRows: max(opt.MaxBatch, DefaultMaxRows),
				Declared: opt.Declared, MemoryLimit: opt.MemoryLimit})
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
	// Declared describes a file without ppml metadata (models[].torchscript).
	Declared *declared.Model
	// MemoryLimit bounds libtorch's allocations in the process, all models together (the
	// job's resources.memory less the decrypted inputs; 0: none).
	MemoryLimit int64
}

// The memory the loaded models have committed: their working memory (a forward pass of
// MaxRows rows on every instance at once), which libtorch allocates only while they compute,
// so that a model loaded later cannot take what an earlier one needs to answer.
//
// resident is the loaded models' instances (their weights), and inflight the buffers of the
// requests being computed (reserve): a request is computed only if its buffers fit beside
// both and the committed working memory.
var (
	memMu     sync.Mutex
	committed int64
	resident  int64
	inflight  int64
	open      int
)

// MemoryCommitted is the working memory the loaded models have committed (their instances'
// forward passes, all at once), beside what libtorch holds (torch.MemoryInUse).
func MemoryCommitted() int64 {
	memMu.Lock()
	defer memMu.Unlock()
	return committed
}

// MemoryError is a model that does not fit in the job's memory limit.
type MemoryError struct {
	Limit int64
	Need  string
	Err   error
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("the model needs more memory than resources.memory allows (%d MiB for libtorch's tensors after the decrypted inputs): %s; raise resources.memory, or lower resources.threads (one instance each) or max_batch",
		e.Limit>>20, e.Need)
}

func (e *MemoryError) Unwrap() error { return e.Err }

// Model is a loaded dl model.
type Model struct {
	meta    model.Metadata
	file    *modelfile.Meta
	decl    *declared.Model // nil for a file with ppml metadata
	classes int
	vocab   *text.Vocabulary
	maxRows int
	pool    chan *torch.Model
	all     []*torch.Model
	// work is the working memory this model committed (see committed), weights what its
	// instances hold (see resident).
	work    int64
	weights int64
	closed  sync.Once
}

// Load reads a model file from untrusted bytes and builds its instances.
func Load(file []byte, opt Options) (_ *Model, err error) {
	var f *modelfile.Model
	if opt.Declared != nil {
		f, err = modelfile.DecodeDeclared(file, opt.Declared)
	} else {
		f, err = modelfile.DecodeModel(file, "")
	}
	if err != nil {
		return nil, fmt.Errorf("dl model: %w", err)
	}
	meta := f.Meta
	c := meta.Architecture
	m := &Model{file: meta, decl: opt.Declared, classes: c.Classes, maxRows: opt.MaxRows}
	if m.maxRows <= 0 {
		m.maxRows = DefaultMaxRows
	}
	m.meta = model.Metadata{Name: opt.Name, Version: opt.Version, Platform: Platform, Batchable: true,
		Outputs: []model.TensorSpec{{Name: Probability, DataType: tensor.FP32, Shape: []int64{-1, int64(c.Classes)}},
			{Name: Prediction, DataType: tensor.Int64, Shape: []int64{-1}}}}
	memMu.Lock()
	defer memMu.Unlock()
	if opt.MemoryLimit > 0 {
		torch.SetMemoryLimit(opt.MemoryLimit)
	}
	open++
	defer func() {
		if err != nil {
			m.closeLocked()
		}
	}()
	if d := m.decl; d != nil {
		if err := m.declare(d); err != nil {
			return nil, err
		}
		if err := m.build(opt, train.NewLogitsModel, f.Tensors); err != nil {
			return nil, err
		}
		return m, nil
	}
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
	if err := m.build(opt, train.NewModel, f.Tensors); err != nil {
		return nil, err
	}
	return m, nil
}

// declare sets the metadata of a declared model.
func (m *Model) declare(d *declared.Model) error {
	dt := tensor.FP32
	if d.Input.DataType == declared.UINT8 {
		dt = tensor.Uint8
	}
	m.meta.Inputs = []model.TensorSpec{{Name: d.Input.Name, DataType: dt, Shape: append([]int64{-1}, d.Input.Shape...)}}
	m.meta.Features = d.Input.Features
	m.meta.Outputs = append(m.meta.Outputs, model.TensorSpec{Name: d.Output.Name, DataType: tensor.FP32, Shape: []int64{-1, int64(m.classes)}})
	if d.Output.Labels != nil {
		m.meta.Outputs = append(m.meta.Outputs, model.TensorSpec{Name: Label, DataType: tensor.Bytes, Shape: []int64{-1}})
	}
	return nil
}

// build makes the instances and, under a memory limit, measures the working memory of a
// forward pass of maxRows rows and commits it for every instance. memMu is held.
func (m *Model) build(opt Options, newModel func(arch.Config, []arch.Tensor, int) (*torch.Model, error), ts []arch.Tensor) error {
	c := m.file.Architecture
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	limit := torch.MemoryLimit()
	memErr := func(need string, err error) error {
		return fmt.Errorf("dl model: %w", &MemoryError{Limit: limit, Need: need, Err: err})
	}
	m.pool = make(chan *torch.Model, threads)
	start := torch.MemoryInUse()
	defer func() {
		m.weights = max(torch.MemoryInUse()-start, 0)
		resident += m.weights
	}()
	for i := range threads {
		// What the models loaded before have committed must stay free while this one loads.
		if err := torch.Reserve("committed", committed); err != nil {
			return memErr(fmt.Sprintf("%d MiB in use and %d MiB committed to other models' forward passes", torch.MemoryInUse()>>20, committed>>20), err)
		}
		tm, err := newModel(c, ts, 1)
		torch.Release(committed)
		if err != nil {
			var me *torch.MemoryLimitError
			if errors.As(err, &me) {
				return memErr(fmt.Sprintf("instance %d of %d: %s", i+1, threads, limitMessage(me)), err)
			}
			return fmt.Errorf("dl model: %w", err)
		}
		m.all = append(m.all, tm)
		m.pool <- tm
	}
	if limit <= 0 {
		return nil
	}
	// One forward pass of maxRows rows of zeros (empty texts' worth of tokens at most
	// max_tokens each), with what is committed reserved: its peak above what was in use is
	// the working memory of one instance.
	if err := torch.Reserve("committed", committed); err != nil {
		return memErr(fmt.Sprintf("%d MiB in use and %d MiB committed", torch.MemoryInUse()>>20, committed>>20), err)
	}
	before := torch.MemoryInUse()
	torch.ResetMemoryPeak()
	err := m.all[0].Forward(make([]float32, m.maxRows*m.classes), m.maxRows, m.classes, m.probe()...)
	work := torch.MemoryPeak() - before
	torch.Release(committed)
	if err != nil {
		var me *torch.MemoryLimitError
		if errors.As(err, &me) {
			return memErr(fmt.Sprintf("a forward pass of %d rows does not fit beside %d KiB in use and %d KiB committed to other models: %s",
				m.maxRows, before>>10, committed>>10, limitMessage(me)), err)
		}
		return fmt.Errorf("dl model: forward pass of %d rows: %w", m.maxRows, err)
	}
	need := torch.MemoryInUse() + committed + int64(threads)*work
	if need > limit {
		return memErr(fmt.Sprintf("%d MiB of weights and other models' working memory in use or committed, and %d instances × %d KiB for forward passes of %d rows", (torch.MemoryInUse()+committed)>>20, threads, work>>10, m.maxRows), nil)
	}
	m.work = int64(threads) * work
	committed += m.work
	return nil
}

// probe is a forward pass's worth of input: maxRows rows of zeros, or of max_tokens unknown
// tokens each.
func (m *Model) probe() []torch.Input {
	if m.vocab != nil {
		n := m.maxRows * m.file.Input.MaxTokens
		offsets := make([]int64, m.maxRows)
		for i := range offsets {
			offsets[i] = int64(i * m.file.Input.MaxTokens)
		}
		return []torch.Input{{I64: make([]int64, n), Shape: []int64{int64(n)}}, {I64: offsets, Shape: []int64{int64(m.maxRows)}}}
	}
	shape := slices.Clone(m.meta.Inputs[0].Shape)
	shape[0] = int64(m.maxRows)
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return []torch.Input{{F32: make([]float32, n), Shape: shape}}
}

// Metadata describes the model.
func (m *Model) Metadata() model.Metadata { return m.meta }

// File is the model file's metadata (architecture, training, metrics, training job digest).
func (m *Model) File() *modelfile.Meta { return m.file }

// Architecture is the model's architecture.
func (m *Model) Architecture() arch.Config { return m.file.Architecture }

// Close frees the instances. Calls still running finish first. When the last model closes,
// the memory limit is lifted.
func (m *Model) Close() error {
	memMu.Lock()
	defer memMu.Unlock()
	m.closeLocked()
	return nil
}

func (m *Model) closeLocked() {
	m.closed.Do(func() {
		for _, tm := range m.all {
			tm.Close()
		}
		committed -= m.work
		resident -= m.weights
		if open--; open == 0 {
			torch.SetMemoryLimit(0)
			committed, resident = 0, 0
		}
	})
}

// Predict runs the model on in[0], checked against the metadata by the registry.
func (m *Model) Predict(ctx context.Context, in []tensor.Tensor) ([]tensor.Tensor, error) {
	x := in[0]
	rows := int(x.Shape[0])
	release, err := m.reserve(x, rows)
	if err != nil {
		return nil, err
	}
	defer release()
	if x.DataType == tensor.Uint8 {
		// Pixels 0–255, which the module takes divided by 255 (as the dl engine gives IDX
		// images); the datatype's range is checked already.
		f := make([]float32, len(x.Uints))
		for i, v := range x.Uints {
			f[i] = float32(v) / 255
		}
		x = tensor.Tensor{Name: x.Name, DataType: tensor.FP32, Shape: x.Shape, F32: f}
	}
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
				var me *torch.MemoryLimitError
				if errors.As(err, &me) {
					return nil, model.Unavailable("model %s: rows %d to %d need more memory than resources.memory leaves free now: %s", m.meta.Name, lo, hi-1, limitMessage(me))
				}
				return nil, fmt.Errorf("model %s: rows %d to %d: %w", m.meta.Name, lo, hi-1, err)
			}
		}
	}
	if m.decl != nil {
		return m.declaredOutputs(probs, rows), nil
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

// reserve counts a request's buffers against the memory limit while it is computed: its input
// as decoded, the float32 copy of UINT8 pixels, a piece's token ids, and the outputs. They
// must fit beside the models' instances, the working memory the models committed and the
// other requests being computed; a request that does not is refused as unavailable (KServe
// REST 503, gRPC UNAVAILABLE) before anything is computed, and the model keeps serving. (The
// request's encoded form, which the protocol layer holds, is bounded by max_request_bytes.)
func (m *Model) reserve(x tensor.Tensor, rows int) (func(), error) {
	if torch.MemoryLimit() <= 0 {
		return func() {}, nil
	}
	n := int64(len(x.F32))*4 + int64(len(x.Uints))*5 // UINT8 pixels are copied as float32
	for _, b := range x.Bytes {
		n += int64(len(b))
	}
	if m.vocab != nil {
		n += int64(min(rows, m.maxRows)) * int64(m.file.Input.MaxTokens+1) * 8
	}
	outputs := 1 // probability, computed in place
	if m.decl != nil {
		outputs = 3 // the last layer's values, probability and the module's own output
	}
	n += int64(rows) * (int64(outputs*m.classes)*4 + 16)
	memMu.Lock()
	defer memMu.Unlock()
	limit := torch.MemoryLimit()
	free := limit - resident - committed - inflight
	refuse := func() error {
		return model.Unavailable("model %s: a request of %d rows needs %d KiB for its tensors; resources.memory (%d KiB for the models) has %d KiB free beside their instances (%d KiB), their forward passes (%d KiB) and the requests being computed (%d KiB): send fewer rows at once",
			m.meta.Name, rows, n>>10, limit>>10, max(free, 0)>>10, resident>>10, committed>>10, inflight>>10)
	}
	if n > free {
		return nil, refuse()
	}
	if err := torch.Reserve("request", n); err != nil {
		return nil, refuse()
	}
	inflight += n
	return func() {
		memMu.Lock()
		defer memMu.Unlock()
		inflight -= n
		torch.Release(n)
	}, nil
}

// declaredOutputs turns a declared model's last-layer outputs (rows × classes, in place)
// into its outputs: probability, prediction, the module's own output as declared, and the
// labels. The log-softmax is computed in float64.
func (m *Model) declaredOutputs(z []float32, rows int) []tensor.Tensor {
	k := m.classes
	d := m.decl
	probs := make([]float32, rows*k)
	own := z
	if d.Output.Kind != declared.Logits {
		own = make([]float32, rows*k)
	}
	classes := make([]int64, rows)
	var labels [][]byte
	if d.Output.Labels != nil {
		labels = make([][]byte, rows)
	}
	for i := range rows {
		row := z[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		classes[i] = int64(best)
		if labels != nil {
			labels[i] = []byte(d.Output.Labels[best])
		}
		top := float64(row[best])
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - top)
		}
		lse := top + math.Log(sum)
		for j, v := range row {
			lp := float64(v) - lse
			probs[i*k+j] = float32(math.Exp(lp))
			switch d.Output.Kind {
			case declared.LogProbabilities:
				own[i*k+j] = float32(lp)
			case declared.Probabilities:
				own[i*k+j] = probs[i*k+j]
			}
		}
	}
	out := []tensor.Tensor{
		{Name: Probability, DataType: tensor.FP32, Shape: []int64{int64(rows), int64(k)}, F32: probs},
		{Name: Prediction, DataType: tensor.Int64, Shape: []int64{int64(rows)}, Ints: classes},
		{Name: d.Output.Name, DataType: tensor.FP32, Shape: []int64{int64(rows), int64(k)}, F32: own},
	}
	if labels != nil {
		out = append(out, tensor.Tensor{Name: Label, DataType: tensor.Bytes, Shape: []int64{int64(rows)}, Bytes: labels})
	}
	return out
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
			return fmt.Errorf("%w: input %q: row %d holds a value that is not a finite number (%v)", model.ErrInvalid, m.meta.Inputs[0].Name, i/row, v)
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

// limitMessage is the allocator's refusal without the TorchScript traceback around it.
func limitMessage(me *torch.MemoryLimitError) string {
	msg := me.Message
	if i := strings.Index(msg, "ppml memory limit"); i >= 0 {
		msg = msg[i:]
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
