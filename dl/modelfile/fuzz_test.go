package modelfile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/declared"
	"github.com/ppml/ppml/dl/ptfile"
)

// FuzzDecodeModel: a model file from anywhere either decodes into metadata and tensors that
// fit its architecture, or fails; it never panics.
func FuzzDecodeModel(f *testing.F) {
	// Small seeds (a LeNet-5 file is 180 KB, which the fuzzer mutates and minimizes slowly):
	// an MLP over 2 × 2 images with and without metadata, and a text model.
	mlp := arch.Config{Kind: arch.MLP, Classes: 2, Inputs: 4, Hidden: []int{3}}
	mm := &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: mlp, Input: InputSpec{Kind: InputImages, Height: 2, Width: 2}}
	f.Add(small(f, mlp, mm), "")
	f.Add(small(f, mlp, nil), "mlp")
	text := arch.Config{Kind: arch.Text, Classes: 2, VocabSize: 3, EmbeddingDim: 2}
	meta := &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: text,
		Input: InputSpec{Kind: InputText, TextColumn: "text", MaxTokens: 8}, Vocabulary: []string{"<unk>", "a", "b"}}
	f.Add(small(f, text, meta), "")
	// And as a job declares the MLP (a file without metadata, dl/declared).
	decl := &declared.Model{Architecture: arch.MLP, Classes: 2, Hidden: []int{3},
		Input: declared.Input{Name: "input", DataType: declared.FP32, Shape: []int64{1, 2, 2}}, Output: declared.Output{Kind: declared.Logits, Name: "output"}}
	// And a chain of layers, as an nn.Sequential saves it (modules 0, 1 and 4).
	layers := &declared.Model{Architecture: arch.Layers, Classes: 2, Layers: []arch.Layer{
		{Op: arch.OpConv2d, In: 1, Out: 2, Kernel: []int{3, 3}, Stride: []int{1, 1}, Padding: []int{0, 0}, Bias: true},
		{Op: arch.OpBatchNorm, In: 2, Eps: 1e-5}, {Op: arch.OpReLU}, {Op: arch.OpFlatten}, {Op: arch.OpLinear, In: 8, Out: 2, Bias: true}},
		Input: declared.Input{Name: "input", DataType: declared.FP32, Shape: []int64{1, 4, 4}}, Output: declared.Output{Kind: declared.Logits, Name: "output"}}
	seq := layers.Config()
	if err := seq.Validate(); err != nil {
		f.Fatal(err)
	}
	var pts []ptfile.Tensor
	for _, t := range seq.Init(1) {
		name := strings.NewReplacer("layer0.", "0.", "layer1.", "1.", "layer4.", "4.").Replace(t.Name)
		pts = append(pts, ptfile.Tensor{Name: name, Shape: t.Shape, Data: t.Data})
	}
	var buf bytes.Buffer
	if err := ptfile.WriteStateDict(&buf, "m", pts, nil); err != nil {
		f.Fatal(err)
	}
	if _, err := DecodeDeclared(buf.Bytes(), layers); err != nil {
		f.Fatalf("the Sequential seed: %v", err)
	}
	f.Add(buf.Bytes(), "")
	f.Fuzz(func(t *testing.T, b []byte, kind string) {
		if m, err := DecodeDeclared(b, decl); err == nil {
			fits(t, m)
		}
		if m, err := DecodeDeclared(b, layers); err == nil {
			fits(t, m)
		}
		m, err := DecodeModel(b, arch.Kind(kind))
		if err != nil {
			return
		}
		fits(t, m)
	})
}

// fits checks that a decoded model's tensors are its architecture's.
func fits(t *testing.T, m *Model) {
	shapes := m.Meta.Architecture.Shapes()
	if len(m.Tensors) != len(shapes) {
		t.Fatalf("%d tensors for %d shapes", len(m.Tensors), len(shapes))
	}
	for i, s := range shapes {
		if m.Tensors[i].Name != s.Name || int64(len(m.Tensors[i].Data)) != ptfile.Numel(s.Dims) {
			t.Fatalf("tensor %d: %s with %d values, want %s %v", i, m.Tensors[i].Name, len(m.Tensors[i].Data), s.Name, s.Dims)
		}
	}
}

// small is a state dict of c's initial tensors, with meta as extra/ppml.json unless nil.
func small(f *testing.F, c arch.Config, meta *Meta) []byte {
	var extra map[string][]byte
	if meta != nil {
		mb, err := EncodeMeta(meta)
		if err != nil {
			f.Fatal(err)
		}
		extra = map[string][]byte{MetaFile: mb}
	}
	var pts []ptfile.Tensor
	for _, t := range c.Init(1) {
		pts = append(pts, ptfile.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data})
	}
	var buf bytes.Buffer
	if err := ptfile.WriteStateDict(&buf, "m", pts, extra); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
