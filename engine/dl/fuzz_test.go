package dlengine

import (
	"bytes"
	"testing"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/ptfile"
)

// FuzzDecodeModel: a model file from anywhere either decodes into metadata and tensors that
// fit its architecture, or fails; it never panics.
func FuzzDecodeModel(f *testing.F) {
	for _, classes := range []int{2, 10} {
		f.Add(lenetFile(f, classes, lenetMeta(classes)), "")
		f.Add(lenetFile(f, classes, nil), "lenet5")
	}
	text := arch.Config{Kind: arch.Text, Classes: 2, VocabSize: 3, EmbeddingDim: 2}
	meta := &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: text,
		Input: InputSpec{Kind: InputText, TextColumn: "text", MaxTokens: 8}, Vocabulary: []string{"<unk>", "a", "b"}}
	mb, err := encodeMeta(meta)
	if err != nil {
		f.Fatal(err)
	}
	var pts []ptfile.Tensor
	for _, t := range text.Init(1) {
		pts = append(pts, ptfile.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data})
	}
	var buf bytes.Buffer
	if err := ptfile.WriteStateDict(&buf, "m", pts, map[string][]byte{MetaFile: mb}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes(), "")
	f.Fuzz(func(t *testing.T, b []byte, declared string) {
		m, err := DecodeModel(b, arch.Kind(declared))
		if err != nil {
			return
		}
		shapes := m.Meta.Architecture.Shapes()
		if len(m.Tensors) != len(shapes) {
			t.Fatalf("%d tensors for %d shapes", len(m.Tensors), len(shapes))
		}
		for i, s := range shapes {
			if m.Tensors[i].Name != s.Name || int64(len(m.Tensors[i].Data)) != ptfile.Numel(s.Dims) {
				t.Fatalf("tensor %d: %s with %d values, want %s %v", i, m.Tensors[i].Name, len(m.Tensors[i].Data), s.Name, s.Dims)
			}
		}
	})
}
