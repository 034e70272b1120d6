package ptfile

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// FuzzArchive fuzzes what lies inside a well-formed archive: data.pkl and the storage records
// it points at (FuzzRead's mutations mostly break the zip structure, which archive/zip
// refuses before any of ppml's code runs). Storages "0" to "3" all hold the fuzzed bytes;
// script adds constants.pkl, which makes the archive TorchScript. Seeds: the data.pkl and first
// storage of the real PyTorch files in testdata.
func FuzzArchive(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.pt")
	for _, s := range seeds {
		zr, err := zip.OpenReader(s)
		if err != nil {
			f.Fatal(err)
		}
		var pkl, storage []byte
		script := false
		for _, e := range zr.File {
			switch {
			case strings.HasSuffix(e.Name, "/data.pkl"):
				pkl = readZipped(f, e)
			case strings.HasSuffix(e.Name, "/data/0"):
				storage = readZipped(f, e)
			case strings.HasSuffix(e.Name, "/constants.pkl"):
				script = true
			}
		}
		zr.Close()
		f.Add(pkl, storage, script)
	}
	f.Fuzz(func(t *testing.T, pkl, storage []byte, script bool) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		add := func(name string, b []byte) {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: "m/" + name, Method: zip.Store})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(b)
		}
		add("data.pkl", pkl)
		for _, k := range []string{"0", "1", "2", "3"} {
			add("data/"+k, storage)
		}
		if script {
			add("constants.pkl", []byte("\x80\x02).")) // an empty tuple
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		file, err := Read(buf.Bytes(), Limits{MaxBytes: 16 << 20})
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

func readZipped(f *testing.F, e *zip.File) []byte {
	rc, err := e.Open()
	if err != nil {
		f.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
