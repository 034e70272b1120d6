package arch

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ppml/ppml/dl/ptfile"
	"github.com/ppml/ppml/dl/torch"
)

var configs = []Config{
	{Kind: LeNet5, Classes: 10},
	{Kind: MLP, Classes: 3, Inputs: 7, Hidden: []int{16, 8}},
	{Kind: Text, Classes: 2, VocabSize: 50, EmbeddingDim: 8},
}

// batch makes inputs for a config: n images, n rows of features, or n texts of token ids.
func batch(c Config, n int) []torch.Input {
	r := rand.New(rand.NewPCG(5, 5))
	switch c.Kind {
	case LeNet5:
		x := make([]float32, n*ImageSize*ImageSize)
		for i := range x {
			x[i] = float32(r.Float64())
		}
		return []torch.Input{{F32: x, Shape: []int64{int64(n), 1, ImageSize, ImageSize}}}
	case MLP:
		x := make([]float32, n*c.Inputs)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return []torch.Input{{F32: x, Shape: []int64{int64(n), int64(c.Inputs)}}}
	}
	var tokens, offsets []int64
	for range n {
		offsets = append(offsets, int64(len(tokens)))
		for range 1 + r.IntN(12) {
			tokens = append(tokens, int64(r.IntN(c.VocabSize)))
		}
	}
	return []torch.Input{{I64: tokens, Shape: []int64{int64(len(tokens))}}, {I64: offsets, Shape: []int64{int64(n)}}}
}

// spec is what the engine does: the architecture as a torch model.
func spec(c Config, ts []Tensor) torch.Spec {
	s := torch.Spec{Class: c.Class(), Source: c.Source()}
	for _, m := range c.Submodules() {
		s.Submodules = append(s.Submodules, torch.Submodule{Name: m.Name, Class: m.Class})
	}
	for _, t := range ts {
		s.Params = append(s.Params, torch.Param{Name: t.Name, Shape: t.Shape, Data: t.Data, Buffer: t.Buffer})
	}
	return s
}

func forward(t *testing.T, m *torch.Model, c Config, in []torch.Input, n int) []float32 {
	t.Helper()
	out := make([]float32, n*c.Classes)
	if err := m.Forward(out, n, c.Classes, in...); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildAndForward(t *testing.T) {
	for _, c := range configs {
		t.Run(string(c.Kind), func(t *testing.T) {
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			m, err := torch.NewModel(spec(c, c.Init(1)), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			out := forward(t, m, c, batch(c, 4), 4)
			for i := range 4 {
				var sum float64
				for k := range c.Classes {
					sum += math.Exp(float64(out[i*c.Classes+k]))
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Fatalf("row %d: probabilities sum to %v", i, sum)
				}
			}
		})
	}
}

func TestInitIsSeeded(t *testing.T) {
	c := configs[1]
	a, b, d := c.Init(3), c.Init(3), c.Init(4)
	if !slices.Equal(a[0].Data, b[0].Data) || slices.Equal(a[0].Data, d[0].Data) {
		t.Fatal("initialization is not a function of the seed")
	}
	bound := float32(1 / math.Sqrt(7))
	for _, v := range a[0].Data {
		if v < -bound || v >= bound {
			t.Fatalf("fc1.weight value %v outside ±1/√7", v)
		}
	}
}

func python(t *testing.T) string {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Fatalf("python3-torch is required (make deps installs it): %v", err)
	}
	return "/usr/bin/python3"
}

func writeInputs(t *testing.T, dir string, in []torch.Input) []string {
	t.Helper()
	var paths []string
	for i, x := range in {
		p := filepath.Join(dir, "in"+string(rune('0'+i)))
		var b []byte
		if x.F32 != nil {
			for _, v := range x.F32 {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
		} else {
			for _, v := range x.I64 {
				b = binary.LittleEndian.AppendUint64(b, uint64(v))
			}
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// pyJob is one job of testdata/interop.py: run a saved model, or make one in PyTorch and run it.
type pyJob struct {
	Run    string   `json:"run,omitempty"`
	Make   string   `json:"make,omitempty"`
	Kind   Kind     `json:"kind"`
	Config *Config  `json:"config,omitempty"`
	Shape  []int64  `json:"shape"`
	Inputs []string `json:"inputs"`
	Out    string   `json:"out"`
}

// newPyJob writes a batch's inputs for Python.
func newPyJob(t *testing.T, c Config, in []torch.Input) pyJob {
	t.Helper()
	dir := t.TempDir()
	return pyJob{Kind: c.Kind, Shape: in[0].Shape, Inputs: writeInputs(t, dir, in), Out: filepath.Join(dir, "out")}
}

// pyRun runs the jobs in one python3-torch process and returns each job's outputs.
func pyRun(t *testing.T, py string, jobs []pyJob) [][]float32 {
	t.Helper()
	spec, _ := json.Marshal(jobs)
	p := filepath.Join(t.TempDir(), "jobs.json")
	os.WriteFile(p, spec, 0o600)
	if b, err := exec.Command(py, "testdata/interop.py", p).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, b)
	}
	var outs [][]float32
	for _, j := range jobs {
		raw, err := os.ReadFile(j.Out)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, len(raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		outs = append(outs, v)
	}
	return outs
}

func close5(t *testing.T, what string, a, b []float32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values vs %d", what, len(a), len(b))
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			t.Fatalf("%s: value %d is %v vs %v", what, i, a[i], b[i])
		}
	}
}

// ppml → PyTorch: the TorchScript file ppml saves loads in python3-torch (torch.jit.load) and
// gives the same log-probabilities to 1e-5.
func TestSavedModelRunsInPyTorch(t *testing.T) {
	py := python(t)
	var jobs []pyJob
	var ours [][]float32
	var files [][]byte
	for _, c := range configs {
		m, err := torch.NewModel(spec(c, c.Init(2)), 1)
		if err != nil {
			t.Fatal(err)
		}
		in := batch(c, 5)
		ours = append(ours, forward(t, m, c, in, 5))
		b, err := m.Save(nil)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		j := newPyJob(t, c, in)
		j.Run = filepath.Join(t.TempDir(), "m.pt")
		os.WriteFile(j.Run, b, 0o600)
		jobs = append(jobs, j)
		files = append(files, b)
	}
	for i, got := range pyRun(t, py, jobs) {
		c := configs[i]
		close5(t, string(c.Kind)+": python vs ppml", got, ours[i])
		// And ptfile reads ppml's own file back to the same tensors.
		f, err := ptfile.Read(files[i], ptfile.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Match(f.Tensors); err != nil {
			t.Fatal(err)
		}
	}
}

// PyTorch → ppml: modules of examples/dl/ppml_models.py, scripted or as state dicts, are read
// as data (Infer, Match), run by ppml's own definition, and agree with python3-torch to 1e-5.
func TestPyTorchModelsRunInPPML(t *testing.T) {
	py := python(t)
	var jobs []pyJob
	var ins [][]torch.Input
	for _, c := range configs {
		in := batch(c, 6)
		j := newPyJob(t, c, in)
		j.Make, j.Config = t.TempDir(), &c
		jobs, ins = append(jobs, j), append(ins, in)
	}
	for i, want := range pyRun(t, py, jobs) {
		c := configs[i]
		for _, name := range []string{"script.pt", "state.pt"} {
			b, err := os.ReadFile(filepath.Join(jobs[i].Make, name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := ptfile.Read(b, ptfile.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Infer(c.Kind, f.Tensors)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Hidden, c.Hidden) || got.Classes != c.Classes || got.Inputs != c.Inputs || got.VocabSize != c.VocabSize {
				t.Fatalf("%s %s: inferred %+v, want %+v", c.Kind, name, got, c)
			}
			ps, err := got.Match(f.Tensors)
			if err != nil {
				t.Fatal(err)
			}
			m, err := torch.NewModel(spec(got, ps), 1)
			if err != nil {
				t.Fatal(err)
			}
			close5(t, string(c.Kind)+" "+name, forward(t, m, got, ins[i], 6), want)
			m.Close()
		}
	}
}

func TestMatchNamesWhatIsWrong(t *testing.T) {
	c := configs[0]
	good := func() []*ptfile.Tensor {
		var ts []*ptfile.Tensor
		for _, p := range c.Init(1) {
			ts = append(ts, &ptfile.Tensor{Name: p.Name, DType: ptfile.Float32, Shape: p.Shape, Data: p.Data})
		}
		return ts
	}
	cases := []struct {
		edit func([]*ptfile.Tensor) []*ptfile.Tensor
		want string
	}{
		{func(ts []*ptfile.Tensor) []*ptfile.Tensor { return ts[1:] }, "tensor conv1.weight is missing"},
		{func(ts []*ptfile.Tensor) []*ptfile.Tensor {
			ts[6].Shape = []int64{100, 10}
			return ts
		}, "tensor fc2.weight has shape [100 10], the architecture needs [10 100]"},
		{func(ts []*ptfile.Tensor) []*ptfile.Tensor {
			return append(ts, &ptfile.Tensor{Name: "fc3.weight", DType: ptfile.Float32})
		}, "does not have: fc3.weight"},
		{func(ts []*ptfile.Tensor) []*ptfile.Tensor {
			ts[0].DType, ts[0].Data = ptfile.Float64, nil
			return ts
		}, "conv1.weight is float64"},
		{func(ts []*ptfile.Tensor) []*ptfile.Tensor {
			ts[1].Data[0] = float32(math.NaN())
			return ts
		}, "non-finite"},
	}
	for _, k := range cases {
		_, err := c.Match(k.edit(good()))
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("got %v, want %q", err, k.want)
		}
	}
	// A LeNet file declared as an MLP: its fc layers look like one, its other tensors do not.
	mc, err := Infer(MLP, good())
	if err == nil {
		_, err = mc.Match(good())
	}
	if err == nil || !strings.Contains(err.Error(), "does not have: conv1.bias, conv1.weight") {
		t.Errorf("a LeNet file declared as mlp: %v", err)
	}
	// An MLP without its statistics buffers (a plain PyTorch module) reads its inputs as they
	// are; one of the two alone is a mismatch.
	mlp := Config{Kind: MLP, Classes: 2, Inputs: 3, Hidden: []int{}}
	var plain []*ptfile.Tensor
	for _, s := range mlp.Shapes() {
		if !s.Buffer {
			plain = append(plain, &ptfile.Tensor{Name: s.Name, DType: ptfile.Float32, Shape: s.Dims, Data: make([]float32, ptfile.Numel(s.Dims))})
		}
	}
	ts, err := mlp.Match(plain)
	if err != nil || len(ts) != 4 || fmt.Sprint(ts[2].Data, ts[3].Data) != "[0 0 0] [1 1 1]" {
		t.Fatalf("an MLP without mean and std: %v %v", err, ts)
	}
	withMean := append(plain, &ptfile.Tensor{Name: "mean", DType: ptfile.Float32, Shape: []int64{3}, Data: make([]float32, 3)})
	if _, err := mlp.Match(withMean); err == nil || !strings.Contains(err.Error(), "tensor std is missing") {
		t.Errorf("an MLP with mean and no std: %v", err)
	}
	if _, err := Infer("resnet", nil); err == nil || !strings.Contains(err.Error(), `"resnet"`) {
		t.Errorf("unknown kind: %v", err)
	}
}

// A model file from plain PyTorch names its modules its own way (nn.Sequential's 0, 3, …;
// features.0): the architecture's modules take the file's in order, or the one a declared
// layer names, and each must hold exactly its layer's tensors.
func TestMatchByModule(t *testing.T) {
	f32 := func(name string, shape ...int64) *ptfile.Tensor {
		return &ptfile.Tensor{Name: name, DType: ptfile.Float32, Shape: shape, Data: make([]float32, ptfile.Numel(shape))}
	}
	seq := []*ptfile.Tensor{f32("1.weight", 8, 4), f32("1.bias", 8), f32("3.weight", 3, 8), f32("3.bias", 3)}
	mlp := Config{Kind: MLP, Classes: 3, Inputs: 4, Hidden: []int{8}}
	ts, err := mlp.Match(seq)
	if err != nil || len(ts) != 6 || ts[0].Name != "fc1.weight" || ts[2].Name != "fc2.weight" {
		t.Fatalf("an nn.Sequential MLP: %v %v", ts, err)
	}
	if _, err := mlp.Match(seq[:2]); err == nil || !strings.Contains(err.Error(), "the architecture has 2 modules with tensors, the file 1 (in order: 1 {weight [8 4], bias [8]})") {
		t.Errorf("a module missing: %v", err)
	}
	bad := []*ptfile.Tensor{f32("1.weight", 8, 4), f32("1.bias", 8), f32("3.weight", 3, 8)}
	if _, err := mlp.Match(bad); err == nil || !strings.Contains(err.Error(), "module fc2 takes the file's module 3, which holds weight; it needs bias, weight") {
		t.Errorf("a bias missing: %v", err)
	}
	wrong := []*ptfile.Tensor{f32("1.weight", 8, 5), f32("1.bias", 8), f32("3.weight", 3, 8), f32("3.bias", 3)}
	if _, err := mlp.Match(wrong); err == nil || !strings.Contains(err.Error(), "tensor 1.weight (fc1.weight) has shape [8 5], the architecture needs [8 4]") {
		t.Errorf("a shape: %v", err)
	}

	layers := Config{Kind: Layers, Classes: 3, Shape: []int64{2, 4, 4}, Layers: []Layer{
		{Op: OpConv2d, In: 2, Out: 4, Kernel: []int{3, 3}, Stride: []int{1, 1}, Padding: []int{0, 0}, Module: "features.0"},
		{Op: OpBatchNorm, In: 4, Eps: 1e-5, Module: "features.1"},
		{Op: OpFlatten}, {Op: OpLinear, In: 16, Out: 3, Bias: true}}}
	if err := layers.Validate(); err != nil {
		t.Fatal(err)
	}
	count := &ptfile.Tensor{Name: "features.1.num_batches_tracked", DType: ptfile.Int64, Shape: []int64{}}
	file := []*ptfile.Tensor{f32("classifier.weight", 3, 16), f32("classifier.bias", 3), f32("features.0.weight", 4, 2, 3, 3),
		f32("features.1.weight", 4), f32("features.1.bias", 4), f32("features.1.running_mean", 4), f32("features.1.running_var", 4), count}
	ts, err = layers.Match(file)
	if err != nil || len(ts) != 7 || ts[0].Name != "layer0.weight" || ts[5].Name != "layer3.weight" || !ts[4].Buffer {
		t.Fatalf("layers with named modules: %v %v", ts, err)
	}
	file[2] = f32("features.9.weight", 4, 2, 3, 3)
	if _, err := layers.Match(file); err == nil || !strings.Contains(err.Error(), "layer 1 (conv2d 2→4 3×3) names module features.0, which the file does not hold") {
		t.Errorf("a named module missing: %v", err)
	}
	file[6] = f32("features.1.running_var", 4)
	file[6].Data[0] = -1
	file[2] = f32("features.0.weight", 4, 2, 3, 3)
	if _, err := layers.Match(file); err == nil || !strings.Contains(err.Error(), "features.1.running_var (layer1.running_var) holds a negative variance") {
		t.Errorf("a negative variance: %v", err)
	}
}
