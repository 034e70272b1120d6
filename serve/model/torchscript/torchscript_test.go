package torchscript_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/modelfile"
	"github.com/ppml/ppml/dl/ptfile"
	"github.com/ppml/ppml/dl/text"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/serve/model"
	_ "github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/model/torchscript"
	"github.com/ppml/ppml/serve/tensor"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// modelFile writes a model as the dl engine's train task does: ppml's TorchScript with the
// tensors, and the metadata as extra/ppml.json. It returns the file and a reference model
// built directly from the same tensors.
func modelFile(t *testing.T, meta *modelfile.Meta, seed uint64) ([]byte, *torch.Model) {
	t.Helper()
	c := meta.Architecture
	ts := c.Init(seed)
	m, err := train.NewModel(c, ts, 1)
	must(t, err)
	t.Cleanup(m.Close)
	mj, err := modelfile.EncodeMeta(meta)
	must(t, err)
	b, err := m.Save(map[string][]byte{modelfile.MetaFile: mj})
	must(t, err)
	return b, m
}

func meta(c arch.Config, in modelfile.InputSpec) *modelfile.Meta {
	return &modelfile.Meta{Format: modelfile.MetaFormat, Version: modelfile.MetaVersion, Architecture: c, Input: in}
}

// want is what the served model must answer: exp of the reference's log-probabilities and
// the arg-max.
func want(t *testing.T, ref *torch.Model, rows, classes int, in ...torch.Input) ([]float32, []int64) {
	t.Helper()
	lp := make([]float32, rows*classes)
	must(t, ref.Forward(lp, rows, classes, in...))
	p := make([]float32, len(lp))
	cl := make([]int64, rows)
	for i := range rows {
		row := lp[i*classes : (i+1)*classes]
		cl[i] = int64(slices.Index(row, slices.Max(row)))
		for k, v := range row {
			p[i*classes+k] = float32(math.Exp(float64(v)))
		}
	}
	return p, cl
}

// A text classifier takes BYTES texts, tokenized with the file's vocabulary, and answers what
// libtorch computes from the token ids directly.
func TestTextModel(t *testing.T) {
	vocab := []string{text.Unknown, "free", "money", "meeting", "tomorrow"}
	md := meta(arch.Config{Kind: arch.Text, Classes: 2, VocabSize: len(vocab), EmbeddingDim: 4},
		modelfile.InputSpec{Kind: modelfile.InputText, TextColumn: "text", MaxTokens: 3})
	md.Vocabulary = vocab
	file, ref := modelFile(t, md, 3)
	m, err := model.Load(file, model.LoadOptions{Name: "spam", Version: "1", Threads: 1})
	must(t, err)
	defer m.Close()
	got := m.Metadata()
	if got.Platform != torchscript.Platform || len(got.Inputs) != 1 || got.Inputs[0].Name != "text" || got.Inputs[0].DataType != tensor.Bytes {
		t.Fatalf("metadata %+v", got)
	}
	texts := []string{"FREE money!!", "meeting tomorrow at noon, free coffee", "", "nothing known"}
	in := tensor.Tensor{Name: "text", DataType: tensor.Bytes, Shape: []int64{int64(len(texts))}}
	v, err := text.NewVocabulary(vocab)
	must(t, err)
	var tokens []int64
	var offsets []int64
	for _, s := range texts {
		in.Bytes = append(in.Bytes, []byte(s))
		offsets = append(offsets, int64(len(tokens)))
		tokens = v.Encode(tokens, s, 3)
	}
	out, err := m.Predict(context.Background(), []tensor.Tensor{in})
	must(t, err)
	wp, wc := want(t, ref, len(texts), 2, torch.Input{I64: tokens, Shape: []int64{int64(len(tokens))}}, torch.Input{I64: offsets, Shape: []int64{int64(len(offsets))}})
	if !slices.Equal(out[0].F32, wp) || !slices.Equal(out[1].Ints, wc) {
		t.Fatalf("served %v %v, libtorch directly %v %v", out[0].F32, out[1].Ints, wp, wc)
	}
	in.Bytes[1] = []byte{0xff, 'a'}
	if _, err := m.Predict(context.Background(), []tensor.Tensor{in}); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "text 1 is not UTF-8") {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}

// A table model computes large requests in pieces of MaxRows rows, from a pool of instances
// shared by concurrent callers: every caller gets the answer of a lone call.
func TestTableModelPiecesAndConcurrency(t *testing.T) {
	md := meta(arch.Config{Kind: arch.MLP, Classes: 3, Inputs: 4, Hidden: []int{8}},
		modelfile.InputSpec{Kind: modelfile.InputTable, Features: []string{"a", "b", "c", "d"}})
	md.Label = "y"
	file, ref := modelFile(t, md, 4)
	m, err := torchscript.Load(file, torchscript.Options{Name: "t", Version: "1", Threads: 2, MaxRows: 3})
	must(t, err)
	defer m.Close()
	if f := m.Metadata().Features; !slices.Equal(f, md.Input.Features) {
		t.Fatalf("features %v", f)
	}
	const rows = 10
	x := make([]float32, rows*4)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	in := []tensor.Tensor{{Name: "input", DataType: tensor.FP32, Shape: []int64{rows, 4}, F32: x}}
	first, err := m.Predict(context.Background(), in)
	must(t, err)
	// The pieces are rows 0–2, 3–5, 6–8, 9: the same values as one forward pass of all rows,
	// up to the last bits a different matrix size may change.
	wp, wc := want(t, ref, rows, 3, torch.Input{F32: x, Shape: []int64{rows, 4}})
	for i := range wp {
		if math.Abs(float64(first[0].F32[i]-wp[i])) > 1e-6 {
			t.Fatalf("probability %d: %v in pieces, %v at once", i, first[0].F32[i], wp[i])
		}
	}
	if !slices.Equal(first[1].Ints, wc) || first[0].Shape[0] != rows {
		t.Fatalf("classes %v, want %v", first[1].Ints, wc)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				out, err := m.Predict(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(out[0].F32, first[0].F32) {
					errs <- errors.New("a concurrent call answered differently")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	x[5] = float32(math.NaN())
	if _, err := m.Predict(context.Background(), in); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "row 1") {
		t.Fatalf("NaN: %v", err)
	}
	empty, err := m.Predict(context.Background(), []tensor.Tensor{{Name: "input", DataType: tensor.FP32, Shape: []int64{0, 4}, F32: []float32{}}})
	if err != nil || empty[0].Shape[0] != 0 || len(empty[1].Ints) != 0 {
		t.Fatalf("zero rows: %v %v", empty, err)
	}
	// A caller that gives up while every instance is busy is not kept waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	x[5] = 0
	if _, err := m.Predict(ctx, in); err == nil {
		// A free instance may be taken before the cancellation is seen: then the first piece's
		// check of the context ends the call.
		t.Fatal("a cancelled call succeeded")
	}
}

// Model files that are not dl models, or do not say what they are, are refused with the reason;
// the backends are chosen by the file's first bytes.
func TestBadModelFiles(t *testing.T) {
	if b := model.Backends(); !slices.Contains(b, "torchscript") || !slices.Contains(b, "tabular") {
		t.Fatalf("backends %v", b)
	}
	load := func(b []byte) error {
		m, err := model.Load(b, model.LoadOptions{Name: "m", Version: "1", Threads: 1})
		if err == nil {
			m.Close()
		}
		return err
	}
	if err := load([]byte("PK\x03\x04 not really a zip archive")); err == nil || !strings.Contains(err.Error(), "dl model: not a model") {
		t.Errorf("a broken archive: %v", err)
	}
	// A state dict without ppml's metadata: serving needs to know what the model reads.
	c := arch.Config{Kind: arch.LeNet5, Classes: 10}
	var pts []ptfile.Tensor
	for _, ts := range c.Init(1) {
		pts = append(pts, ptfile.Tensor{Name: ts.Name, DType: ptfile.Float32, Shape: ts.Shape, Data: ts.Data})
	}
	var sd bytes.Buffer
	must(t, ptfile.WriteStateDict(&sd, "archive", pts, nil))
	if err := load(sd.Bytes()); err == nil || !strings.Contains(err.Error(), "no ppml metadata") {
		t.Errorf("a bare state dict: %v", err)
	}
	// Tensors that do not fit the architecture the metadata declares.
	md := meta(c, modelfile.InputSpec{Kind: modelfile.InputImages, Height: 28, Width: 28})
	mj, err := modelfile.EncodeMeta(md)
	must(t, err)
	sd.Reset()
	must(t, ptfile.WriteStateDict(&sd, "archive", pts[:3], map[string][]byte{modelfile.MetaFile: mj}))
	if err := load(sd.Bytes()); err == nil || !strings.Contains(err.Error(), "dl model") {
		t.Errorf("missing tensors: %v", err)
	}
	sd.Reset()
	must(t, ptfile.WriteStateDict(&sd, "archive", pts, map[string][]byte{modelfile.MetaFile: mj}))
	if err := load(sd.Bytes()); err != nil {
		t.Errorf("a state dict with metadata: %v", err)
	}
	if err := load([]byte("\x00\x01 nothing")); err == nil || !strings.Contains(err.Error(), "not a model") {
		t.Errorf("garbage: %v", err)
	}
}

// resources.memory bounds the models: a model whose instances and forward passes do not fit
// is refused at load with a message naming the limit; what a loaded model committed to its
// forward passes stays free while another loads; the limit is lifted with the last model.
func TestMemoryLimit(t *testing.T) {
	file, _ := modelFile(t, meta(arch.Config{Kind: arch.LeNet5, Classes: 10}, modelfile.InputSpec{Kind: modelfile.InputImages, Height: 28, Width: 28}), 1)
	opt := torchscript.Options{Name: "m", Version: "1", Threads: 2, MaxRows: 64}
	base := torch.MemoryInUse()

	opt.MemoryLimit = base + 1<<20
	_, err := torchscript.Load(file, opt)
	var me *torchscript.MemoryError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "more memory than resources.memory allows") || !strings.Contains(err.Error(), "raise resources.memory") {
		t.Fatalf("1 MiB: %v", err)
	}
	if torch.MemoryLimit() != 0 || torch.MemoryInUse() != base || torchscript.MemoryCommitted() != 0 {
		t.Fatalf("after a refused load: limit %d, in use %d (was %d), committed %d", torch.MemoryLimit(), torch.MemoryInUse(), base, torchscript.MemoryCommitted())
	}

	// What one model takes, measured under a generous limit.
	opt.MemoryLimit = 1 << 30
	a, err := torchscript.Load(file, opt)
	must(t, err)
	need := torch.MemoryInUse() - base + torchscript.MemoryCommitted()
	if torchscript.MemoryCommitted() < 2*64*6*24*24*4 { // at least conv1's activations, per instance
		t.Fatalf("committed %d bytes for 2 instances of 64 rows", torchscript.MemoryCommitted())
	}
	a.Close()

	opt.MemoryLimit = base + need + need/4
	a, err = torchscript.Load(file, opt)
	must(t, err)
	x := make([]float32, 64*28*28)
	out, err := a.Predict(context.Background(), []tensor.Tensor{{Name: "input", DataType: tensor.FP32, Shape: []int64{64, 1, 28, 28}, F32: x}})
	if err != nil || len(out[0].F32) != 640 {
		t.Fatalf("predict within the limit: %v", err)
	}
	if _, err := torchscript.Load(file, opt); !errors.As(err, &me) || !strings.Contains(err.Error(), "committed") {
		t.Fatalf("a second model beside the first's committed forward passes: %v", err)
	}
	a.Close()
	b, err := torchscript.Load(file, opt)
	must(t, err)
	b.Close()
	if torch.MemoryLimit() != 0 || torchscript.MemoryCommitted() != 0 {
		t.Fatalf("after the last model: limit %d, committed %d", torch.MemoryLimit(), torchscript.MemoryCommitted())
	}
}
