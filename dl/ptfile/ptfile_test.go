package ptfile

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type expectation map[string]struct {
	Shape []int64   `json:"shape"`
	DType string    `json:"dtype"`
	Data  []float64 `json:"data"`
}

func readExpect(t *testing.T, path string) expectation {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e expectation
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func checkAgainst(t *testing.T, f *File, e expectation) {
	t.Helper()
	if len(f.Tensors) != len(e) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(e))
	}
	for name, want := range e {
		got := f.Tensor(name)
		if got == nil {
			t.Fatalf("tensor %s missing", name)
		}
		if got.DType.String() != want.DType || !equalInts(got.Shape, want.Shape) {
			t.Fatalf("%s: %s %v, want %s %v", name, got.DType, got.Shape, want.DType, want.Shape)
		}
		if want.Data == nil {
			if got.Data != nil {
				t.Fatalf("%s: %s tensor was read as float32", name, got.DType)
			}
			continue
		}
		if len(got.Data) != len(want.Data) {
			t.Fatalf("%s: %d values, want %d", name, len(got.Data), len(want.Data))
		}
		for i := range got.Data {
			if float64(got.Data[i]) != want.Data[i] {
				t.Fatalf("%s[%d] = %v, want %v", name, i, got.Data[i], want.Data[i])
			}
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Files written by python3-torch 1.13 (testdata/ptfiles.py write): every tensor, with its
// exact values, through strides, offsets and shared storages.
func TestReadPyTorchFiles(t *testing.T) {
	for _, c := range []struct {
		name string
		kind Kind
	}{{"statedict", StateDict}, {"script", TorchScript}, {"strided", StateDict}, {"float64", StateDict}} {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.name+".pt"))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Read(b, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != c.kind {
				t.Fatalf("kind %s, want %s", f.Kind, c.kind)
			}
			checkAgainst(t, f, readExpect(t, filepath.Join("testdata", c.name+".expect")))
			if c.kind == TorchScript {
				if f.Class != "__torch__.Net" || string(f.Extra["ppml.json"]) != `{"hello": 1}` {
					t.Fatalf("class %q, extra %q", f.Class, f.Extra)
				}
			}
		})
	}
}

func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Fatalf("python3-torch is required (make deps installs it): %v", err)
	}
	return py
}

// Both ways with the python3-torch of this machine: what it writes now is read exactly, and
// what WriteStateDict writes is loaded by torch.load and by load_state_dict into the module.
func TestPythonInterop(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	if out, err := exec.Command(py, "testdata/ptfiles.py", "write", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "statedict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	e := readExpect(t, filepath.Join(dir, "statedict.expect"))
	checkAgainst(t, f, e)

	var ts []Tensor
	for _, x := range f.Tensors {
		ts = append(ts, *x)
	}
	var buf bytes.Buffer
	if err := WriteStateDict(&buf, "net", ts, map[string][]byte{"ppml.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ours.pt")
	if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(py, "testdata/ptfiles.py", "check", out).Output()
	if err != nil {
		t.Fatalf("torch.load of our state dict: %v", err)
	}
	var back map[string]json.RawMessage
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if string(back["loaded_into_module"]) != "true" {
		t.Fatalf("load_state_dict did not take our file: %s", got)
	}
	delete(back, "loaded_into_module")
	raw, _ := json.Marshal(back)
	var be expectation
	json.Unmarshal(raw, &be)
	for k, v := range e {
		w := be[k]
		if !equalInts(v.Shape, w.Shape) || len(v.Data) != len(w.Data) {
			t.Fatalf("%s came back as %v", k, w)
		}
		for i := range v.Data {
			if v.Data[i] != w.Data[i] {
				t.Fatalf("%s[%d] came back as %v, want %v", k, i, w.Data[i], v.Data[i])
			}
		}
	}
	// And we read our own file back, extra record included.
	f2, err := Read(buf.Bytes(), DefaultLimits)
	if err != nil || string(f2.Extra["ppml.json"]) != "{}" {
		t.Fatalf("reading our own file: %v", err)
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	ts := []Tensor{{Name: "a.weight", Shape: []int64{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}, {Name: "b", Shape: []int64{}, Data: []float32{7}}}
	var x, y bytes.Buffer
	if err := WriteStateDict(&x, "m", ts, nil); err != nil {
		t.Fatal(err)
	}
	WriteStateDict(&y, "m", ts, nil)
	if !bytes.Equal(x.Bytes(), y.Bytes()) {
		t.Fatal("same tensors, different bytes")
	}
	if err := WriteStateDict(&x, "m", []Tensor{{Name: "bad", Shape: []int64{2}, Data: []float32{1}}}, nil); err == nil {
		t.Fatal("inconsistent tensor written")
	}
}

// archive builds a zip with the given records under prefix m/.
func archive(t *testing.T, recs map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range recs {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "m/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	zw.Close()
	return buf.Bytes()
}

func TestRefusesWhatIsNotData(t *testing.T) {
	good, _ := os.ReadFile("testdata/statedict.pt")
	pkl := func(s string) map[string][]byte { return map[string][]byte{"data.pkl": []byte(s)} }
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a PyTorch file"},
		{"text", []byte("hello"), "not a PyTorch file"},
		{"truncated", good[:len(good)/2], "not a PyTorch file"},
		{"zip without data.pkl", archive(t, map[string][]byte{"version": []byte("3\n")}), "no <name>/data.pkl"},
		// The classic: GLOBAL os system, REDUCE.
		{"os.system", archive(t, pkl("\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")), "global os.system is not allowed"},
		{"builtins.eval", archive(t, pkl("\x80\x02c__builtin__\neval\n.")), "not allowed"},
		{"torch global outside the list", archive(t, pkl("\x80\x02ctorch\nload\n.")), "not allowed"},
		{"no STOP", archive(t, pkl("\x80\x02}")), "no STOP"},
		{"stack left", archive(t, pkl("\x80\x02}}.")), "left on the stack"},
		{"list not dict", archive(t, pkl("\x80\x02].")), "not a state dict"},
		{"unknown opcode", archive(t, pkl("\x80\x02I1\n.")), "not allowed in a PyTorch file"},
		{"memo miss", archive(t, pkl("\x80\x02h\x05.")), "memo key 5"},
		{"storage missing", archive(t, pkl("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89}tRs.")), "record data/0 is missing"},
		{"strides beyond storage", archive(t, map[string][]byte{"data/0": make([]byte, 16),
			"data.pkl": []byte("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x02K\x04\x85K\x01\x85\x89}tRs.")}), "reach element 5 of a storage of 4"},
		{"storage shorter than it says", archive(t, map[string][]byte{"data/0": make([]byte, 8),
			"data.pkl": []byte("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89}tRs.")}), "holds 8 bytes"},
		{"storage key escapes", archive(t, pkl("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x04\x00\x00\x00../xX\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89}tRs.")), "not a record name"},
	}
	for _, c := range cases {
		_, err := Read(c.b, DefaultLimits)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestLimits(t *testing.T) {
	b, _ := os.ReadFile("testdata/statedict.pt")
	if _, err := Read(b, Limits{MaxBytes: 100}); err == nil || !strings.Contains(err.Error(), "more than allowed") {
		t.Fatalf("100-byte budget: %v", err)
	}
}
