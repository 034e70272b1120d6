package dlengine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/ptfile"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/ml/dataset"
)

func idxFile(dims ...int) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	n := 1
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
		n *= d
	}
	return append(b, make([]byte, n)...)
}

// lenetFile is a LeNet-5 model file: tensors from Init, and metadata (nil: none).
func lenetFile(t testing.TB, classes int, meta *Meta) []byte {
	t.Helper()
	c := arch.Config{Kind: arch.LeNet5, Classes: classes}
	var ts []arch.Tensor
	ts = append(ts, c.Init(1)...)
	var buf bytes.Buffer
	var extra map[string][]byte
	if meta != nil {
		b, err := encodeMeta(meta)
		if err != nil {
			t.Fatal(err)
		}
		extra = map[string][]byte{MetaFile: b}
	}
	pts := make([]ptfile.Tensor, len(ts))
	for i, x := range ts {
		pts[i] = ptfile.Tensor{Name: x.Name, Shape: x.Shape, Data: x.Data}
	}
	if err := ptfile.WriteStateDict(&buf, "m", pts, extra); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func lenetMeta(classes int) *Meta {
	return &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: arch.Config{Kind: arch.LeNet5, Classes: classes},
		Input: InputSpec{Kind: InputImages, Height: 28, Width: 28}}
}

// Every bad input of the list fails with an error that says what is wrong, and
// writes no output.
func TestBadInputs(t *testing.T) {
	good := idxFile(10, 28, 28)
	labels := idxFile(10)
	trunc := good[:len(good)-5]
	tenClasses := lenetFile(t, 10, lenetMeta(10))
	// The metadata says 10 classes, the tensors hold 5.
	wrongShape := func() []byte {
		c := arch.Config{Kind: arch.LeNet5, Classes: 5}
		var pts []ptfile.Tensor
		for _, x := range c.Init(1) {
			pts = append(pts, ptfile.Tensor{Name: x.Name, Shape: x.Shape, Data: x.Data})
		}
		mb, _ := encodeMeta(lenetMeta(10))
		var buf bytes.Buffer
		ptfile.WriteStateDict(&buf, "m", pts, map[string][]byte{MetaFile: mb})
		return buf.Bytes()
	}()
	evalIO := []string{"model", "images", "labels"}
	cases := []struct {
		name   string
		params string
		ins    []string
		in     map[string][]byte
		want   string
	}{
		{"images are not IDX", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": []byte("a,b\n1,2\n"), "labels": labels}, "input images: not an IDX file: magic 61 2c 62 0a"},
		{"truncated images", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": trunc, "labels": labels}, "input images: IDX file truncated: its header announces 10 × 28 × 28 = 7840 bytes of data, the file holds 7835"},
		{"truncated gzip", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": gz(good)[:30], "labels": labels}, "input images: gzip"},
		{"labels as images", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": good, "labels": good}, "labels: an IDX file of 3 dimensions, want 1"},
		{"count mismatch", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": good, "labels": idxFile(9)}, "inputs images and labels differ in count: 10 images, 9 labels"},
		{"32 × 32 images for lenet5", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": idxFile(10, 32, 32), "labels": labels}, "lenet5 reads 28 × 28 images, these are 32 × 32"},
		{"one class", "  task: train\n  model: lenet5\n", []string{"images", "labels"},
			map[string][]byte{"images": good, "labels": labels}, "a single class"},
		{"model is a CSV", "  task: evaluate\n", evalIO,
			map[string][]byte{"model": []byte("a,b\n"), "images": good, "labels": labels}, "model input: not a model: a model file is a TorchScript archive"},
		{"model is a zip of something else", "  task: evaluate\n", evalIO,
			map[string][]byte{"model": zipOf(t, "doc/readme.txt"), "images": good, "labels": labels}, "no <name>/data.pkl"},
		{"shapes do not match the metadata", "  task: evaluate\n", evalIO,
			map[string][]byte{"model": wrongShape, "images": good, "labels": labels}, "tensor fc2.weight has shape [5 100], the architecture needs [10 100]"},
		{"declared mlp but the file is lenet5", "  task: evaluate\n  model: mlp\n", evalIO,
			map[string][]byte{"model": tenClasses, "images": good, "labels": labels}, "the job declares model mlp, the model file holds a lenet5"},
		{"bare file without a declaration", "  task: evaluate\n", evalIO,
			map[string][]byte{"model": lenetFile(t, 10, nil), "images": good, "labels": labels}, "declare its architecture with the model parameter"},
		{"images of another size", "  task: evaluate\n", evalIO,
			map[string][]byte{"model": tenClasses, "images": idxFile(10, 32, 32), "labels": labels}, "the model reads 28 × 28 images, these are 32 × 32"},
		{"label beyond the classes", "  task: evaluate\n", evalIO,
			map[string][]byte{"model": lenetFile(t, 2, lenetMeta(2)), "images": good, "labels": lastLabel(7)}, "labels, row 10: the label is not one of the model's 2 classes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outs := []string{"model"}
			if strings.Contains(c.params, "evaluate") {
				outs = []string{"report"}
			}
			p := params(t, c.params, c.ins, outs)
			if c.name == "one class" {
				c.in["labels"] = idxFile(10)
			}
			out, _, err := runMem(t, p, c.in, outs...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, c.want)
			}
			for n, b := range out {
				if len(b) != 0 {
					t.Fatalf("output %s written (%d bytes) by a failed job", n, len(b))
				}
			}
		})
	}
}

// lastLabel is ten labels, all 0 but the last.
func lastLabel(v byte) []byte {
	b := idxFile(10)
	b[len(b)-1] = v
	return b
}

func zipOf(t *testing.T, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ptfile.WriteStateDict(&buf, "x", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A valid zip whose records are not under one <name>/data.pkl.
	b := bytes.ReplaceAll(buf.Bytes(), []byte("x/data.pkl"), []byte("x/notes.tx"))
	return b
}

// A learning rate that makes the loss explode stops the job with the epoch and batch, and the
// launcher writes nothing.
func TestDivergenceThroughLauncher(t *testing.T) {
	w := newWorkspace(t, "")
	plain, err := os.ReadFile(dataset.Require(t, dataset.BreastCancer))
	if err != nil {
		t.Fatal(err)
	}
	w.encrypt(t, "cancer.csv.ppml", plain, envelope.TypeCSV)
	w.manifest(t, "job.yaml", `version: 1
name: diverge
engine: dl
inputs:
  train: cancer.csv.ppml
outputs:
  model: {path: out/m.pt.ppml, key: file:owner.key}
parameters:
  task: train
  model: mlp
  label: target
  hidden: [256, 256]
  learning_rate: 10
  momentum: 0.99
  epochs: 20
  batch_size: 16
`)
	_, err = w.run(t, "job.yaml")
	var de *train.DivergedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "training diverged: the loss is") || !strings.Contains(err.Error(), "at epoch") {
		t.Fatalf("want a divergence naming epoch and batch, got %v", err)
	}
	t.Log(err)
	w.noOutputs(t)
}

// A job that needs more memory than resources.memory ends with a message that says so, and the
// launcher writes nothing.
func TestMemoryLimitThroughLauncher(t *testing.T) {
	w := newWorkspace(t, "")
	w.encrypt(t, "img.ppml", fashionSubset(t, dataset.FashionTestImages, 0, 2048), envelope.TypeBytes)
	w.encrypt(t, "lab.ppml", fashionSubset(t, dataset.FashionTestLabels, 0, 2048), envelope.TypeBytes)
	job := func(mem string) string {
		return `version: 1
name: memory
engine: dl
inputs:
  images: img.ppml
  labels: lab.ppml
outputs:
  model: {path: out/m.pt.ppml, key: file:owner.key}
parameters:
  task: train
  model: lenet5
  epochs: 1
  batch_size: 2048
resources:
  memory: ` + mem + "\n"
	}
	w.manifest(t, "small.yaml", job("16MiB"))
	_, err := w.run(t, "small.yaml")
	var me *MemoryError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "needs more memory than resources.memory (16MiB) allows") {
		t.Fatalf("want a memory error, got %v", err)
	}
	t.Log(err)
	w.noOutputs(t)
	// The same job with room enough runs.
	w.manifest(t, "big.yaml", job("1GiB"))
	if _, err := w.run(t, "big.yaml"); err != nil {
		t.Fatal(err)
	}
}
