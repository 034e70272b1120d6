package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"testing"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/idx"
	"github.com/ppml/ppml/dl/torch"
)

// fashion reads the first n Fashion-MNIST test images and labels (Debian's
// dataset-fashion-mnist): small enough for a unit test.
func fashion(t *testing.T, n int) (*Images, *Images) {
	t.Helper()
	read := func(name string) *idx.Array {
		f, err := os.Open("/usr/share/datasets/fashion-mnist/" + name)
		if err != nil {
			t.Fatalf("dataset-fashion-mnist is required (make deps installs it): %v", err)
		}
		defer f.Close()
		b, err := idx.Gunzip(f, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		a, err := idx.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	imgs, labs := read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz")
	y, err := ReadLabels(labs)
	if err != nil {
		t.Fatal(err)
	}
	all, err := NewImages(imgs, y)
	if err != nil {
		t.Fatal(err)
	}
	// The first n images for training, the next n/2 for testing, as separate datasets.
	return subset(t, all, 0, n), subset(t, all, n, n+n/2)
}

// subset copies rows [from, to) into a Rows-like Images over an in-memory IDX file.
func subset(t *testing.T, m *Images, from, to int) *Images {
	t.Helper()
	b := []byte{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28}
	b[7] = byte(to - from)
	b[6] = byte((to - from) >> 8)
	item := make([]byte, 28*28)
	var y []int64
	for r := from; r < to; r++ {
		m.arr.Read(r, item)
		b = append(b, item...)
		y = append(y, m.labels[r])
	}
	a, err := idx.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewImages(a, y)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func accuracy(t *testing.T, m *torch.Model, d Data, classes int) float64 {
	t.Helper()
	p, err := Predict(context.Background(), m, d, classes, 64)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, y := range d.Labels() {
		best := 0
		for c := 1; c < classes; c++ {
			if p[i*classes+c] > p[i*classes+best] {
				best = c
			}
		}
		if int64(best) == y {
			right++
		}
	}
	return float64(right) / float64(d.Len())
}

func lenet(t *testing.T, seed uint64) *torch.Model {
	t.Helper()
	c := arch.Config{Kind: arch.LeNet5, Classes: 10}
	m, err := NewModel(c, c.Init(seed), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if err := m.SetOptimizer(torch.Optimizer{Kind: torch.SGD, LR: 0.05, Momentum: 0.9}); err != nil {
		t.Fatal(err)
	}
	return m
}

// LeNet-5 learns Fashion-MNIST: 2 epochs on 2,000 images beat chance (0.1) by far.
func TestLeNetLearns(t *testing.T) {
	tr, te := fashion(t, 2000)
	m := lenet(t, 1)
	before := accuracy(t, m, te, 10)
	res, err := Fit(context.Background(), m, tr, Options{Epochs: 2, BatchSize: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	after := accuracy(t, m, te, 10)
	if !(after > 0.6 && after > before+0.3) || !(res.EpochLoss[1] < res.EpochLoss[0]) {
		t.Fatalf("accuracy %.3f → %.3f, epoch losses %v", before, after, res.EpochLoss)
	}
	if res.Steps != 2*32 {
		t.Fatalf("%d steps, want 64 (32 batches of 64, the last short)", res.Steps)
	}
}

// Same seed, same data, one thread: the same model bytes; another seed: other bytes.
func TestSameSeedSameModel(t *testing.T) {
	tr, _ := fashion(t, 300)
	run := func(seed uint64) []byte {
		m := lenet(t, seed)
		if _, err := Fit(context.Background(), m, tr, Options{Epochs: 1, BatchSize: 32, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		b, err := m.Save(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := run(7), run(7), run(8)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different model bytes")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same model bytes")
	}
}

func TestDivergenceNamesEpochAndBatch(t *testing.T) {
	c := arch.Config{Kind: arch.MLP, Classes: 2, Inputs: 2, Hidden: []int{4}}
	m, err := NewModel(c, c.Init(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetOptimizer(torch.Optimizer{Kind: torch.SGD, LR: 0.1})
	x := make([]float32, 2*40)
	y := make([]int64, 40)
	for i := range 40 {
		x[2*i], y[i] = float32(i%2), int64(i%2)
	}
	// One row holds an infinite value: the loss of its batch is not finite.
	d := &Rows{X: x, Features: 2, Y: y}
	x[2*17+1] = float32(math.Inf(1))
	_, err = Fit(context.Background(), m, d, Options{Epochs: 1, BatchSize: 10, Seed: 3})
	var de *DivergedError
	if !errors.As(err, &de) || de.Epoch != 1 || de.Batches != 4 {
		t.Fatalf("want a divergence in epoch 1 of 4 batches, got %v", err)
	}
	t.Log(err)
}

func TestFitStopsOnCancel(t *testing.T) {
	tr, _ := fashion(t, 200)
	m := lenet(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := Fit(ctx, m, tr, Options{Epochs: 5, BatchSize: 10, Progress: func(int, int, int, float64) {
		if n++; n == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("after %d batches: %v", n, err)
	}
}

func TestCountMismatch(t *testing.T) {
	tr, _ := fashion(t, 100)
	if _, err := NewImages(tr.arr, make([]int64, 99)); err == nil || err.Error() != "images and labels differ in count: 100 images, 99 labels" {
		t.Fatalf("%v", err)
	}
}
