package torch

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// tinySpec is a two-layer network: fc1 (4 → 8, tanh), fc2 (8 → 3), log-softmax.
func tinySpec(seed uint64) Spec {
	r := rand.New(rand.NewPCG(seed, 1))
	param := func(name string, shape ...int64) Param {
		d := make([]float32, Numel(shape))
		for i := range d {
			d[i] = float32(r.Float64()-0.5) * 0.5
		}
		return Param{Name: name, Shape: shape, Data: d}
	}
	return Spec{
		Class:      "__torch__.Tiny",
		Submodules: []Submodule{{"fc1", "__torch__.Linear"}, {"fc2", "__torch__.Linear"}},
		Params: []Param{param("fc1.weight", 8, 4), param("fc1.bias", 8), param("fc2.weight", 3, 8), param("fc2.bias", 3),
			{Name: "scale", Shape: []int64{4}, Data: []float32{1, 1, 1, 1}, Buffer: true}},
		Source: `
def forward(self, x: Tensor) -> Tensor:
    x = x * self.scale
    x = torch.tanh(torch.linear(x, self.fc1.weight, self.fc1.bias))
    return torch.log_softmax(torch.linear(x, self.fc2.weight, self.fc2.bias), 1)
`,
	}
}

// tinyData is a separable 3-class problem: the class is the argmax of the first 3 features.
func tinyData(n int) ([]float32, []int64) {
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, n*4)
	y := make([]int64, n)
	for i := range n {
		best := 0
		for j := range 4 {
			x[i*4+j] = float32(r.NormFloat64())
			if j < 3 && x[i*4+j] > x[i*4+best] {
				best = j
			}
		}
		y[i] = int64(best)
	}
	return x, y
}

func train(t *testing.T, seed uint64, steps int) (*Model, []float64) {
	t.Helper()
	m, err := NewModel(tinySpec(seed), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if err := m.SetOptimizer(Optimizer{Kind: SGD, LR: 0.5, Momentum: 0.9}); err != nil {
		t.Fatal(err)
	}
	x, y := tinyData(256)
	var losses []float64
	for s := range steps {
		b := s % 4 * 64
		loss, err := m.TrainStep(y[b:b+64], Input{F32: x[b*4 : (b+64)*4], Shape: []int64{64, 4}})
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, loss)
	}
	return m, losses
}

func TestTrainPredictSave(t *testing.T) {
	m, losses := train(t, 1, 60)
	if !(losses[len(losses)-1] < losses[0]/3) {
		t.Fatalf("loss did not fall: first %v, last %v", losses[0], losses[len(losses)-1])
	}
	x, y := tinyData(256)
	out := make([]float32, 256*3)
	if err := m.Forward(out, 256, 3, Input{F32: x, Shape: []int64{256, 4}}); err != nil {
		t.Fatal(err)
	}
	right := 0
	for i := range 256 {
		best := 0
		for c := 1; c < 3; c++ {
			if out[i*3+c] > out[i*3+best] {
				best = c
			}
		}
		if int64(best) == y[i] {
			right++
		}
	}
	if right < 230 {
		t.Fatalf("accuracy %d/256 after training", right)
	}
	w := make([]float32, 3)
	if err := m.Get("fc2.bias", w); err != nil {
		t.Fatal(err)
	}
	sc := make([]float32, 4)
	if err := m.Get("scale", sc); err != nil || sc[0] != 1 {
		t.Fatalf("buffer scale %v, %v (buffers are not trained)", sc, err)
	}
	b, err := m.Save(map[string][]byte{"ppml.json": []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("PK\x03\x04")) || !bytes.Contains(b, []byte("extra/ppml.json")) {
		t.Fatalf("saved model is not a zip with extra/ppml.json (%d bytes)", len(b))
	}
}

// The same initial values and batches on one thread give the same model, byte for byte.
func TestDeterministic(t *testing.T) {
	save := func(seed uint64) []byte {
		m, _ := train(t, seed, 20)
		b, err := m.Save(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := save(3), save(3), save(4)
	if !bytes.Equal(a, b) {
		t.Fatal("two trainings from the same seed saved different bytes")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds saved the same bytes")
	}
}

// The first model of a process trains to the same bits as every later one. libtorch keeps some
// settings per thread (the graph executor's optimization switch); set on the wrong thread they
// held only for the model that happened to reuse it, which is always a process's first model,
// so the check runs in a fresh process.
func TestDeterministicFirstModelOfProcess(t *testing.T) {
	if os.Getenv("PPML_TORCH_FIRST_MODEL") == "1" {
		save := func() []byte {
			m, _ := train(t, 3, 20)
			defer m.Close()
			b, err := m.Save(nil)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if first, second := save(), save(); !bytes.Equal(first, second) {
			t.Fatal("the first model of the process trained to different bytes than the second")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeterministicFirstModelOfProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PPML_TORCH_FIRST_MODEL=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fresh process: %v\n%s", err, out)
	}
}

func TestErrorsCarryLibtorchMessage(t *testing.T) {
	s := tinySpec(1)
	s.Source = "def forward(self, x: Tensor) -> Tensor:\n    return x +\n"
	if _, err := NewModel(s, 1); err == nil || !strings.Contains(err.Error(), "libtorch build model") {
		t.Fatalf("bad source: %v", err)
	}
	m, err := NewModel(tinySpec(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := make([]float32, 2*3)
	// 5 features where fc1 takes 4: libtorch's shape error, not a crash.
	err = m.Forward(out, 2, 3, Input{F32: make([]float32, 10), Shape: []int64{2, 5}})
	var te *Error
	if !errors.As(err, &te) || !strings.Contains(te.Message, "size") {
		t.Fatalf("shape mismatch: %v", err)
	}
	if err := m.Forward(out, 2, 3, Input{F32: make([]float32, 7), Shape: []int64{2, 4}}); err == nil {
		t.Fatal("inconsistent input accepted")
	}
	if _, err := m.TrainStep([]int64{0, 1}, Input{F32: make([]float32, 8), Shape: []int64{2, 4}}); err == nil || !strings.Contains(err.Error(), "optimizer") {
		t.Fatalf("train step without optimizer: %v", err)
	}
	if err := m.SetOptimizer(Optimizer{Kind: SGD, LR: 0.1}); err != nil {
		t.Fatal(err)
	}
	// Label 7 with 3 classes: nll_loss refuses it.
	if _, err := m.TrainStep([]int64{0, 7}, Input{F32: make([]float32, 8), Shape: []int64{2, 4}}); !errors.As(err, &te) {
		t.Fatalf("out-of-range label: %v", err)
	}
	if err := m.Get("nope", make([]float32, 1)); err == nil {
		t.Fatal("unknown tensor accepted")
	}
	// A NaN input gives a NaN loss and no step.
	nan := make([]float32, 8)
	nan[0] = float32(math.NaN())
	loss, err := m.TrainStep([]int64{0, 1}, Input{F32: nan, Shape: []int64{2, 4}})
	if err != nil || !math.IsNaN(loss) {
		t.Fatalf("NaN batch: loss %v, %v", loss, err)
	}
	w := make([]float32, 3)
	if err := m.Get("fc2.bias", w); err != nil || math.IsNaN(float64(w[0])) {
		t.Fatalf("NaN loss changed the weights: %v %v", w, err)
	}
	m.Close()
	if err := m.Forward(out, 2, 3, Input{F32: make([]float32, 8), Shape: []int64{2, 4}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	m, err := NewModel(tinySpec(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer SetMemoryLimit(0)
	SetMemoryLimit(MemoryInUse() + 64<<10)
	// A batch whose activations need far more than 64 KiB.
	n := 20000
	out := make([]float32, n*3)
	err = m.Forward(out, n, 3, Input{F32: make([]float32, n*4), Shape: []int64{int64(n), 4}})
	var me *MemoryLimitError
	if !errors.As(err, &me) {
		t.Fatalf("want a memory limit error, got %v", err)
	}
	if err := Reserve("test buffer", 1<<20); err == nil {
		t.Fatal("Reserve beyond the limit succeeded")
	}
	SetMemoryLimit(0)
	if err := m.Forward(out, n, 3, Input{F32: make([]float32, n*4), Shape: []int64{int64(n), 4}}); err != nil {
		t.Fatalf("without a limit: %v", err)
	}
}

// TestSetLearningRate changes the optimizer's rate and reads it back, for both optimizers; a
// model without an optimizer refuses.
func TestSetLearningRate(t *testing.T) {
	for _, kind := range []OptimizerKind{SGD, Adam} {
		m, err := NewModel(tinySpec(1), 1)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.SetLearningRate(0.1); err == nil {
			t.Fatal("a learning rate without an optimizer was accepted")
		}
		if err := m.SetOptimizer(Optimizer{Kind: kind, LR: 0.5}); err != nil {
			t.Fatal(err)
		}
		if lr, err := m.LearningRate(); err != nil || lr != 0.5 {
			t.Fatalf("optimizer %v: learning rate %v, %v; want 0.5", kind, lr, err)
		}
		if err := m.SetLearningRate(0.5 * 0.3); err != nil {
			t.Fatal(err)
		}
		if lr, err := m.LearningRate(); err != nil || lr != 0.5*0.3 {
			t.Fatalf("optimizer %v: learning rate %v, %v after setting %v", kind, lr, err, 0.5*0.3)
		}
		if err := m.SetLearningRate(-1); err == nil {
			t.Fatal("a negative learning rate was accepted")
		}
	}
}
