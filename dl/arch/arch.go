// Package arch defines the neural network architectures of the dl engine: LeNet-5 in BigDL's
// layout, a multilayer perceptron and a text classifier (an embedding bag). Each is a Config —
// the architecture's kind and sizes, recorded in model files — from which the package makes
// the tensor names and shapes, PyTorch's default initialization drawn from a seed, and the
// TorchScript source that package torch compiles.
//
// The package is pure Go: the engine's parameter parsing uses it without libtorch, and the
// engine hands the class, submodules, tensors and source to package dl/torch. The source is
// ppml's: a model file contributes tensors only, matched by name and shape against the Config
// it declares (Match), so a file cannot bring code of its own. The tensor
// names are those of the equivalent PyTorch nn.Module (docs/dl.md gives the Python classes),
// so state dicts move both ways.
package arch

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ppml/ppml/dl/ptfile"
	"github.com/ppml/ppml/ml/split"
)

// Kind names an architecture.
type Kind string

const (
	LeNet5 Kind = "lenet5"
	MLP    Kind = "mlp"
	Text   Kind = "text"
)

// Kinds lists the architectures.
var Kinds = []Kind{LeNet5, MLP, Text}

// LeNet-5 reads 28 × 28 single-channel images: BigDL's layout fixes the flattened size at
// 12 × 4 × 4.
const (
	ImageSize = 28
	lenetFlat = 12 * 4 * 4
)

// Limits on sizes, so that a declared architecture cannot ask for absurd memory.
const (
	MaxClasses   = 10000
	MaxInputs    = 1 << 20
	MaxHidden    = 1 << 16
	MaxLayers    = 16
	MaxVocab     = 1 << 22
	MaxEmbedding = 4096
)

// Config is an architecture with its sizes.
type Config struct {
	Kind    Kind `json:"kind"`
	Classes int  `json:"classes"`
	// MLP: the number of input features (image pixels or table columns) and the hidden
	// layer widths.
	Inputs int   `json:"inputs,omitempty"`
	Hidden []int `json:"hidden,omitempty"`
	// Text: the vocabulary size (token ids 0 … VocabSize−1) and the embedding width.
	VocabSize    int `json:"vocab_size,omitempty"`
	EmbeddingDim int `json:"embedding_dim,omitempty"`
	// Layers (declared by a job only, never read from a model file's metadata): one
	// example's input shape and the layers in order.
	Shape  []int64 `json:"shape,omitempty"`
	Layers []Layer `json:"layers,omitempty"`
}

// Validate checks the sizes.
func (c Config) Validate() error {
	if c.Classes < 2 || c.Classes > MaxClasses {
		return fmt.Errorf("%s: %d classes (want 2 to %d)", c.Kind, c.Classes, MaxClasses)
	}
	if c.Kind != Layers && (c.Shape != nil || c.Layers != nil) {
		return fmt.Errorf("%s has no shape or layers", c.Kind)
	}
	switch c.Kind {
	case Layers:
		return c.validateLayers()
	case LeNet5:
		if c.Inputs != 0 || c.Hidden != nil || c.VocabSize != 0 || c.EmbeddingDim != 0 {
			return errors.New("lenet5 has no sizes besides its classes")
		}
	case MLP:
		if c.Inputs < 1 || c.Inputs > MaxInputs {
			return fmt.Errorf("mlp: %d inputs (want 1 to %d)", c.Inputs, MaxInputs)
		}
		if len(c.Hidden) > MaxLayers {
			return fmt.Errorf("mlp: %d hidden layers (at most %d)", len(c.Hidden), MaxLayers)
		}
		for _, h := range c.Hidden {
			if h < 1 || h > MaxHidden {
				return fmt.Errorf("mlp: hidden layer of %d units (want 1 to %d)", h, MaxHidden)
			}
		}
		if c.VocabSize != 0 || c.EmbeddingDim != 0 {
			return errors.New("mlp has no vocabulary or embedding")
		}
	case Text:
		if c.VocabSize < 2 || c.VocabSize > MaxVocab {
			return fmt.Errorf("text: vocabulary of %d (want 2 to %d)", c.VocabSize, MaxVocab)
		}
		if c.EmbeddingDim < 1 || c.EmbeddingDim > MaxEmbedding {
			return fmt.Errorf("text: embedding dimension %d (want 1 to %d)", c.EmbeddingDim, MaxEmbedding)
		}
		if c.Inputs != 0 || c.Hidden != nil {
			return errors.New("text has no inputs or hidden layers")
		}
	default:
		return fmt.Errorf("architecture %q (want %s)", c.Kind, kindList())
	}
	return nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Shape is a tensor's name and shape; FanIn is what PyTorch's default initialization of its
// layer divides by (0 for buffers, -1 for an embedding, drawn from N(0, 1)).
type Shape struct {
	Name   string
	Dims   []int64
	FanIn  int
	Buffer bool
}

func linear(name string, in, out int) []Shape {
	return []Shape{{name + ".weight", []int64{int64(out), int64(in)}, in, false}, {name + ".bias", []int64{int64(out)}, in, false}}
}

func conv(name string, in, out, k int) []Shape {
	fan := in * k * k
	return []Shape{{name + ".weight", []int64{int64(out), int64(in), int64(k), int64(k)}, fan, false}, {name + ".bias", []int64{int64(out)}, fan, false}}
}

// Shapes lists the tensors of the architecture in state-dict order.
func (c Config) Shapes() []Shape {
	var s []Shape
	switch c.Kind {
	case LeNet5:
		s = append(s, conv("conv1", 1, 6, 5)...)
		s = append(s, conv("conv2", 6, 12, 5)...)
		s = append(s, linear("fc1", lenetFlat, 100)...)
		s = append(s, linear("fc2", 100, c.Classes)...)
		s = append(s, Shape{"input_mean", []int64{}, 0, true}, Shape{"input_std", []int64{}, 0, true})
	case MLP:
		in := c.Inputs
		for i, h := range c.Hidden {
			s = append(s, linear(fmt.Sprintf("fc%d", i+1), in, h)...)
			in = h
		}
		s = append(s, linear(fmt.Sprintf("fc%d", len(c.Hidden)+1), in, c.Classes)...)
		s = append(s, Shape{"mean", []int64{int64(c.Inputs)}, 0, true}, Shape{"std", []int64{int64(c.Inputs)}, 0, true})
	case Layers:
		s = c.layerShapes()
	case Text:
		s = append(s, Shape{"embedding.weight", []int64{int64(c.VocabSize), int64(c.EmbeddingDim)}, -1, false})
		s = append(s, linear("fc", c.EmbeddingDim, c.Classes)...)
	}
	return s
}

// Class is the TorchScript class name of the model (what Python prints as original_name).
func (c Config) Class() string {
	switch c.Kind {
	case LeNet5:
		return "__torch__.LeNet5"
	case MLP:
		return "__torch__.MLP"
	case Layers:
		return "__torch__.Layers"
	}
	return "__torch__.TextClassifier"
}

// Tensor is a named tensor of a model with its values; a Buffer is saved but not trained.
type Tensor struct {
	Name   string
	Shape  []int64
	Data   []float32
	Buffer bool
}

// Submodule is a child module: its attribute name and TorchScript class.
type Submodule struct {
	Name  string
	Class string
}

// Submodules lists the child modules holding the tensors (conv1, fc1, embedding, …).
func (c Config) Submodules() []Submodule {
	var subs []Submodule
	seen := map[string]bool{}
	for _, s := range c.Shapes() {
		mod, _, ok := strings.Cut(s.Name, ".")
		if !ok || seen[mod] {
			continue
		}
		seen[mod] = true
		cls := "__torch__.Linear"
		switch {
		case c.Kind == Layers:
			// A class per layer: two linear layers, one with a bias and one without,
			// cannot share a type.
			cls = "__torch__.Layer" + strings.TrimPrefix(mod, "layer")
		case strings.HasPrefix(mod, "conv"):
			cls = "__torch__.Conv2d"
		case mod == "embedding":
			cls = "__torch__.EmbeddingBag"
		}
		subs = append(subs, Submodule{Name: mod, Class: cls})
	}
	return subs
}

// Source is the TorchScript of the model's forward. Every model returns log-probabilities
// (N × classes): LeNet-5 and the MLP take float32 input, the text classifier token ids and the
// offset of each text in them (EmbeddingBag's convention).
func (c Config) Source() string { return c.source(true) }

// LogitsSource is Source without the final log-softmax: the forward returns the last linear
// layer's output (the serve engine's models declared by a job, whose own output it serves).
func (c Config) LogitsSource() string { return c.source(false) }

func (c Config) source(logSoftmax bool) string {
	ret := "    return torch.log_softmax(x, 1)\n"
	if !logSoftmax {
		ret = "    return x\n"
	}
	switch c.Kind {
	case Layers:
		return c.layerSource(ret)
	case LeNet5:
		// BigDL's LeNet5 after its input normalization (GreyImgNormalizer): conv 1→6 5×5,
		// tanh, max-pool 2, tanh, conv 6→12 5×5, max-pool 2, flatten (192), linear 100, tanh,
		// linear classes, log-softmax.
		return `
def forward(self, x: Tensor) -> Tensor:
    x = (x - self.input_mean) / self.input_std
    x = torch.conv2d(x, self.conv1.weight, self.conv1.bias)
    x = torch.tanh(x)
    x = torch.max_pool2d(x, [2, 2], [2, 2])
    x = torch.tanh(x)
    x = torch.conv2d(x, self.conv2.weight, self.conv2.bias)
    x = torch.max_pool2d(x, [2, 2], [2, 2])
    x = torch.flatten(x, 1)
    x = torch.tanh(torch.linear(x, self.fc1.weight, self.fc1.bias))
    x = torch.linear(x, self.fc2.weight, self.fc2.bias)
` + ret
	case MLP:
		var b strings.Builder
		b.WriteString("\ndef forward(self, x: Tensor) -> Tensor:\n    x = (torch.flatten(x, 1) - self.mean) / self.std\n")
		for i := range c.Hidden {
			fmt.Fprintf(&b, "    x = torch.relu(torch.linear(x, self.fc%d.weight, self.fc%d.bias))\n", i+1, i+1)
		}
		n := len(c.Hidden) + 1
		fmt.Fprintf(&b, "    x = torch.linear(x, self.fc%d.weight, self.fc%d.bias)\n", n, n)
		b.WriteString(ret)
		return b.String()
	}
	// embedding_bag(weight, indices, offsets, scale_grad_by_freq, mode (1 = mean), sparse,
	// per_sample_weights, include_last_offset): the mean embedding of each text.
	return `
def forward(self, tokens: Tensor, offsets: Tensor) -> Tensor:
    e = torch.embedding_bag(self.embedding.weight, tokens, offsets, False, 1, False, None, False)[0]
    x = torch.linear(e, self.fc.weight, self.fc.bias)
` + ret
}

// NumParams is the number of trained values.
func (c Config) NumParams() int64 {
	var n int64
	for _, s := range c.Shapes() {
		if !s.Buffer {
			n += ptfile.Numel(s.Dims)
		}
	}
	return n
}

// initStream is the split.Source stream of the initial weights.
const initStream = 1

// Init draws the initial tensors from the seed with PyTorch's default initialization: weights
// and biases of a layer with fan-in f uniform in [−1/√f, 1/√f) (kaiming_uniform with a = √5,
// as nn.Linear and nn.Conv2d do), embeddings from N(0, 1) (Box–Muller on two uniforms).
// The generator is split.Source(seed, 1); tensors are drawn in Shapes order, row-major.
// Buffers (the input statistics: LeNet-5's input_mean and input_std, the MLP's mean and std)
// start at 0 and 1; the trainer sets them from the data.
func (c Config) Init(seed uint64) []Tensor {
	r := split.Source(seed, initStream)
	unit := func() float64 { return float64(r.Uint64()>>11) / (1 << 53) } // [0, 1)
	var ps []Tensor
	for _, s := range c.Shapes() {
		d := make([]float32, ptfile.Numel(s.Dims))
		switch {
		case s.FanIn == 0 && (s.Name == "std" || s.Name == "input_std" || strings.HasSuffix(s.Name, ".running_var") || !s.Buffer && strings.HasSuffix(s.Name, ".weight")):
			// Statistics' deviations and batch norms' scales start at 1, as in PyTorch.
			for i := range d {
				d[i] = 1
			}
		case s.FanIn == 0:
		case s.FanIn < 0:
			for i := range d {
				u1, u2 := 1-unit(), unit() // u1 in (0, 1]
				d[i] = float32(math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2))
			}
		default:
			bound := 1 / math.Sqrt(float64(s.FanIn))
			for i := range d {
				d[i] = float32((2*unit() - 1) * bound)
			}
		}
		ps = append(ps, Tensor{Name: s.Name, Shape: s.Dims, Data: d, Buffer: s.Buffer})
	}
	return ps
}

// Match takes the tensors of a model file for this architecture: every tensor the
// architecture has must be there, float32, with its exact shape, and the file may hold no
// other tensor. Errors name the tensor.
func (c Config) Match(ts []*ptfile.Tensor) ([]Tensor, error) {
	ts, from, err := c.byModule(ts)
	if err != nil {
		return nil, err
	}
	// name is a tensor as the user knows it: the file's name, and ppml's when they differ.
	name := func(n string) string {
		if f, ok := from[n]; ok && f != n {
			return fmt.Sprintf("%s (%s)", f, n)
		}
		return n
	}
	byName := map[string]*ptfile.Tensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	if c.Kind == LeNet5 {
		// A LeNet-5 saved without input statistics (a PyTorch module that has no such buffers)
		// reads the pixels as they are: mean 0, standard deviation 1.
		for name, v := range map[string]float32{"input_mean": 0, "input_std": 1} {
			if _, ok := byName[name]; !ok {
				byName[name] = &ptfile.Tensor{Name: name, DType: ptfile.Float32, Shape: []int64{}, Data: []float32{v}}
			}
		}
	}
	if c.Kind == MLP && c.Inputs > 0 {
		// Likewise an MLP without the statistics buffers (a plain PyTorch module) reads its
		// inputs as they are; only both missing is read so: one alone is a mismatch.
		_, hasMean := byName["mean"]
		_, hasStd := byName["std"]
		if !hasMean && !hasStd {
			mean, std := make([]float32, c.Inputs), make([]float32, c.Inputs)
			for i := range std {
				std[i] = 1
			}
			byName["mean"] = &ptfile.Tensor{Name: "mean", DType: ptfile.Float32, Shape: []int64{int64(c.Inputs)}, Data: mean}
			byName["std"] = &ptfile.Tensor{Name: "std", DType: ptfile.Float32, Shape: []int64{int64(c.Inputs)}, Data: std}
		}
	}
	var ps []Tensor
	for _, s := range c.Shapes() {
		t, ok := byName[s.Name]
		if !ok {
			return nil, fmt.Errorf("%s model: tensor %s is missing", c.Kind, name(s.Name))
		}
		delete(byName, s.Name)
		if t.DType != ptfile.Float32 {
			return nil, fmt.Errorf("%s model: tensor %s is %s, want float32 (convert with model.float() before saving)", c.Kind, name(s.Name), t.DType)
		}
		if !slices.Equal(t.Shape, s.Dims) {
			return nil, fmt.Errorf("%s model: tensor %s has shape %v, the architecture needs %v", c.Kind, name(s.Name), t.Shape, s.Dims)
		}
		for i, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s model: tensor %s holds a non-finite value at %d", c.Kind, name(s.Name), i)
			}
		}
		if strings.HasSuffix(s.Name, ".running_var") {
			for i, v := range t.Data {
				if v < 0 {
					return nil, fmt.Errorf("%s model: tensor %s holds a negative variance at %d", c.Kind, name(s.Name), i)
				}
			}
		}
		ps = append(ps, Tensor{Name: s.Name, Shape: s.Dims, Data: t.Data, Buffer: s.Buffer})
	}
	if len(byName) > 0 {
		var extra []string
		for n := range byName {
			extra = append(extra, n)
		}
		slices.Sort(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], "…")
		}
		return nil, fmt.Errorf("%s model: the file holds tensors the architecture does not have: %s", c.Kind, strings.Join(extra, ", "))
	}
	// The last tensor is the standard deviation the input is divided by.
	if c.Kind == MLP || c.Kind == LeNet5 {
		last := ps[len(ps)-1]
		for i, v := range last.Data {
			if !(v > 0) {
				return nil, fmt.Errorf("%s model: tensor %s holds %v at %d (must be positive)", c.Kind, last.Name, v, i)
			}
		}
	}
	return ps, nil
}

// Infer reads an architecture's sizes from a file's tensors (for model files without ppml
// metadata): the classes from the last layer, the MLP's inputs and hidden widths from its
// layers, the text classifier's vocabulary and embedding from its embedding. Match then checks
// the file against the result.
func Infer(kind Kind, ts []*ptfile.Tensor) (Config, error) {
	shape := func(name string, rank int) ([]int64, error) {
		for _, t := range ts {
			if t.Name == name {
				if len(t.Shape) != rank {
					return nil, fmt.Errorf("%s model: tensor %s has shape %v, want %d dimensions", kind, name, t.Shape, rank)
				}
				return t.Shape, nil
			}
		}
		return nil, fmt.Errorf("%s model: tensor %s is missing", kind, name)
	}
	c := Config{Kind: kind}
	switch kind {
	case LeNet5:
		s, err := shape("fc2.weight", 2)
		if err != nil {
			return c, err
		}
		c.Classes = int(min(s[0], math.MaxInt32))
	case MLP:
		s, err := shape("fc1.weight", 2)
		if err != nil {
			return c, err
		}
		c.Inputs = int(min(s[1], math.MaxInt32))
		for i := 1; ; i++ {
			s, err := shape(fmt.Sprintf("fc%d.weight", i), 2)
			if err != nil {
				return c, err
			}
			if _, err := shape(fmt.Sprintf("fc%d.weight", i+1), 2); err != nil {
				c.Classes = int(min(s[0], math.MaxInt32))
				break
			}
			if i > MaxLayers {
				return c, fmt.Errorf("mlp model: more than %d hidden layers", MaxLayers)
			}
			c.Hidden = append(c.Hidden, int(min(s[0], math.MaxInt32)))
		}
	case Text:
		s, err := shape("embedding.weight", 2)
		if err != nil {
			return c, err
		}
		c.VocabSize, c.EmbeddingDim = int(min(s[0], math.MaxInt32)), int(min(s[1], math.MaxInt32))
		f, err := shape("fc.weight", 2)
		if err != nil {
			return c, err
		}
		c.Classes = int(min(f[0], math.MaxInt32))
	default:
		return c, fmt.Errorf("architecture %q (want %s)", kind, kindList())
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s model: %w", kind, err)
	}
	return c, nil
}
