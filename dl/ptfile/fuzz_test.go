package ptfile

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds arbitrary bytes (seeded with real PyTorch files) to Read: it must return a
// File or an error, never panic, and every tensor it returns must hold what its shape says.
func FuzzRead(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.pt")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(b, Limits{MaxBytes: 16 << 20})
		if err != nil {
			return
		}
		for _, x := range file.Tensors {
			if x.Data != nil && int64(len(x.Data)) != Numel(x.Shape) {
				t.Fatalf("tensor %s: %d values for shape %v", x.Name, len(x.Data), x.Shape)
			}
		}
	})
}

// FuzzUnpickle runs the pickle machine alone, where most of the parsing is.
func FuzzUnpickle(f *testing.F) {
	f.Add([]byte("\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u."))
	f.Add([]byte("\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89}tRu."))
	f.Fuzz(func(t *testing.T, b []byte) {
		unpickle(b)
	})
}
