// Package declared reads what a job manifest says about a model file that carries no ppml
// metadata — a TorchScript module saved by plain PyTorch (torch.jit.save) or a state dict:
// its architecture and sizes, what it reads and what its forward returns (docs/dl.md, "Models
// from PyTorch"). The dl engine's predict and evaluate tasks (parameters.torchscript) and
// the serve engine's models (models[].torchscript) use it.
//
// The declaration is part of the job, so the job digest covers it: the owner who approves the
// job approves exactly the computation it names. The file still contributes tensors only; they
// must match the declared architecture exactly (dl/modelfile), and the model is rebuilt from
// ppml's own TorchScript for it (dl/arch).
//
// The package is pure Go: the key service and the CLI parse declarations to compute digests.
package declared

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/job"
)

// Datatypes of the declared input.
const (
	// FP32: the values the module takes, as float32.
	FP32 = "FP32"
	// UINT8: pixels 0–255, which the module takes divided by 255 (as the dl engine gives IDX
	// images): a compact request for image models.
	UINT8 = "UINT8"
)

// Output kinds: what the module's forward returns, N × classes.
const (
	LogProbabilities = "log_probabilities" // log_softmax of the last layer (ppml's and BigDL's models)
	Logits           = "logits"            // the last linear layer itself (trained with CrossEntropyLoss)
	Probabilities    = "probabilities"     // softmax of the last layer
)

// Defaults.
const (
	DefaultInputName  = "input"
	DefaultOutputName = "output"
)

// Limits.
const (
	MaxRank     = 4
	MaxLabelLen = 256
)

// Model is a declared model.
type Model struct {
	// Architecture is lenet5, mlp or layers: a text model needs its vocabulary, which only
	// ppml's metadata carries.
	Architecture arch.Kind
	Classes      int
	// Hidden are the MLP's hidden widths (empty: one linear layer).
	Hidden []int
	// Layers are the layers of architecture layers (layers.go), without a final softmax or
	// log_softmax, which Output.Kind records.
	Layers []arch.Layer
	Input  Input
	Output Output
}

// Input is what the module reads: one example's shape (without the batch dimension).
type Input struct {
	Name     string
	DataType string // FP32 or UINT8
	Shape    []int64
	// Features name the columns of a table, in the module's order (a rank-1 input): the dl
	// engine reads them from its data input; Cluster Serving may send one value per feature.
	Features []string
}

// Output is what the module's forward returns.
type Output struct {
	Kind string
	// Name is the served tensor holding the module's own output (serve).
	Name string
	// Labels name the classes in order (optional): served as a label output, written as a
	// label column of predictions.
	Labels []string
}

// Config is the architecture the file's tensors must match.
func (m *Model) Config() arch.Config {
	c := arch.Config{Kind: m.Architecture, Classes: m.Classes}
	if m.Architecture == arch.MLP {
		c.Inputs = int(m.Inputs())
		c.Hidden = slices.Clone(m.Hidden)
		if c.Hidden == nil {
			c.Hidden = []int{}
		}
	}
	if m.Architecture == arch.Layers {
		c.Shape = slices.Clone(m.Input.Shape)
		c.Layers = slices.Clone(m.Layers)
	}
	return c
}

// Inputs is the number of values of one example.
func (m *Model) Inputs() int64 {
	n := int64(1)
	for _, d := range m.Input.Shape {
		n *= d
	}
	return n
}

// Image reports whether the input is an image, [1, H, W] or [H, W], and its size.
func (m *Model) Image() (h, w int, ok bool) {
	s := m.Input.Shape
	switch {
	case len(s) == 3 && s[0] == 1:
		return int(s[1]), int(s[2]), true
	case len(s) == 2:
		return int(s[0]), int(s[1]), true
	}
	return 0, 0, false
}

// Canonical is the declaration with every default explicit, for the job digest.
func (m *Model) Canonical() map[string]any {
	shape := []any{}
	for _, d := range m.Input.Shape {
		shape = append(shape, d)
	}
	in := map[string]any{"name": m.Input.Name, "datatype": m.Input.DataType, "shape": shape}
	if m.Input.Features != nil {
		in["features"] = strs(m.Input.Features)
	}
	out := map[string]any{"kind": m.Output.Kind, "name": m.Output.Name}
	if m.Output.Labels != nil {
		out["labels"] = strs(m.Output.Labels)
	}
	c := map[string]any{"architecture": string(m.Architecture), "classes": int64(m.Classes), "input": in, "output": out}
	if m.Architecture == arch.MLP {
		h := []any{}
		for _, v := range m.Hidden {
			h = append(h, int64(v))
		}
		c["hidden"] = h
	}
	if m.Architecture == arch.Layers {
		c["layers"] = canonicalLayers(m.Layers)
	}
	return c
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Parse reads a declaration (a mapping), recording problems at their fields. It returns nil
// when the declaration cannot be read at all.
func Parse(n job.Node, c *job.Checker) *Model {
	f, ok := n.CheckedFields(c, "architecture", "classes", "hidden", "layers", "input", "output")
	if !ok {
		return nil
	}
	m := &Model{}
	an, ok := f["architecture"]
	if !ok {
		c.Failf(n.Missing("architecture"), "required: lenet5, mlp or layers (the architecture whose tensors the file holds)")
		return nil
	}
	v, err := an.Str()
	if err != nil {
		c.Add(err)
		return nil
	}
	m.Architecture = arch.Kind(v)
	switch m.Architecture {
	case arch.LeNet5, arch.MLP, arch.Layers:
	case arch.Text:
		c.Failf(an, "text: a text model needs its vocabulary, which only ppml's metadata carries (save it with _extra_files as docs/formats/dl-model.md describes)")
		return nil
	default:
		c.Failf(an, "%q: want lenet5, mlp or layers", v)
		return nil
	}
	if hn, ok := f["hidden"]; ok {
		if m.Architecture != arch.MLP {
			c.Failf(hn, "only for architecture mlp")
		} else if items, err := hn.Items(); err != nil {
			c.Add(err)
		} else if len(items) > arch.MaxLayers {
			c.Failf(hn, "%d hidden layers: at most %d", len(items), arch.MaxLayers)
		} else {
			m.Hidden = []int{}
			for _, it := range items {
				if v, err := it.Int(); err != nil {
					c.Add(err)
				} else if v < 1 || v > arch.MaxHidden {
					c.Failf(it, "%d: a hidden width must be between 1 and %d", v, arch.MaxHidden)
				} else {
					m.Hidden = append(m.Hidden, int(v))
				}
			}
		}
	} else if m.Architecture == arch.MLP {
		c.Failf(n.Missing("hidden"), "required for mlp: the hidden layers' widths, [] for none (the file's tensors must match them)")
	}
	final := ""
	if ln, ok := f["layers"]; ok {
		if m.Architecture != arch.Layers {
			c.Failf(ln, "only for architecture layers")
		} else {
			m.Layers, final = parseLayers(ln, c)
		}
	} else if m.Architecture == arch.Layers {
		c.Failf(n.Missing("layers"), "required for architecture layers: the model's layers in order, such as [flatten, {linear: {in: 784, out: 10}}]")
	}
	if in, ok := f["input"]; ok {
		m.Input = parseInput(in, m.Architecture, c)
	} else {
		c.Failf(n.Missing("input"), "required: the input's shape (one example, without the batch dimension)")
	}
	explicit := false
	if on, ok := f["output"]; ok {
		m.Output, explicit = parseOutput(on, c)
	} else {
		m.Output = Output{Kind: LogProbabilities, Name: DefaultOutputName}
	}
	if m.Architecture == arch.Layers {
		// The layers end with the last layer's values (logits) unless they end with a
		// softmax or log_softmax; output.kind, if given, must say the same.
		kind := Logits
		if final != "" {
			kind = final
		}
		if explicit && m.Output.Kind != kind {
			c.Failf(f["output"], "output.kind %s, but the layers end with %s", m.Output.Kind, map[string]string{Logits: "the last layer's values (logits)", LogProbabilities: "log_softmax", Probabilities: "softmax"}[kind])
		}
		m.Output.Kind = kind
	}
	if cn, ok := f["classes"]; ok {
		if v, err := cn.Int(); err != nil {
			c.Add(err)
		} else if v < 2 || v > arch.MaxClasses {
			c.Failf(cn, "%d: want 2 to %d", v, arch.MaxClasses)
		} else {
			m.Classes = int(v)
		}
		if m.Output.Labels != nil && m.Classes != 0 && len(m.Output.Labels) != m.Classes {
			c.Failf(cn, "%d classes, but output.labels names %d", m.Classes, len(m.Output.Labels))
		}
	} else if m.Output.Labels != nil {
		m.Classes = len(m.Output.Labels)
	} else if m.Architecture == arch.Layers && len(m.Layers) > 0 && m.Layers[len(m.Layers)-1].Op == arch.OpLinear {
		m.Classes = m.Layers[len(m.Layers)-1].Out
	} else {
		c.Failf(n.Missing("classes"), "required unless output.labels names the classes")
	}
	if m.Input.Name != "" && m.Input.Name == m.Output.Name {
		c.Failf(n, "input.name and output.name are both %q", m.Input.Name)
	}
	if m.Architecture == arch.Layers && m.Classes != 0 && m.Input.Shape != nil && len(m.Layers) > 0 {
		// The layers must fit the input and one another and end with the classes.
		if err := m.Config().Validate(); err != nil {
			c.Failf(f["layers"], "%v", err)
		}
	}
	return m
}

func parseInput(n job.Node, kind arch.Kind, c *job.Checker) Input {
	in := Input{Name: DefaultInputName, DataType: FP32}
	f, ok := n.CheckedFields(c, "name", "datatype", "shape", "features")
	if !ok {
		return in
	}
	if nn, ok := f["name"]; ok {
		if v, err := nn.Str(); err != nil {
			c.Add(err)
		} else if !tensorName(v) {
			c.Failf(nn, "%q: want 1 to 64 letters, digits, '_', '.' or '-'", v)
		} else {
			in.Name = v
		}
	}
	if dn, ok := f["datatype"]; ok {
		if v, err := dn.Str(); err != nil {
			c.Add(err)
		} else if v != FP32 && v != UINT8 {
			c.Failf(dn, "%q: want FP32 (the values the module takes) or UINT8 (pixels 0–255, taken divided by 255)", v)
		} else {
			in.DataType = v
		}
	}
	sn, ok := f["shape"]
	if !ok {
		c.Failf(n.Missing("shape"), "required: one example's shape without the batch dimension, such as [1, 28, 28] or [4]")
		return in
	}
	items, err := sn.Items()
	if err != nil {
		c.Add(err)
		return in
	}
	if len(items) < 1 || len(items) > MaxRank {
		c.Failf(sn, "%d dimensions: want 1 to %d (without the batch dimension)", len(items), MaxRank)
		return in
	}
	total := int64(1)
	for _, it := range items {
		v, err := it.Int()
		if err != nil {
			c.Add(err)
			return in
		}
		if v < 1 || v > arch.MaxInputs {
			c.Failf(it, "%d: a dimension must be between 1 and %d", v, arch.MaxInputs)
			return in
		}
		total *= v
		if total > arch.MaxInputs {
			c.Failf(sn, "more than %d values per example", arch.MaxInputs)
			return in
		}
		in.Shape = append(in.Shape, v)
	}
	if kind == arch.LeNet5 && !slices.Equal(in.Shape, []int64{1, arch.ImageSize, arch.ImageSize}) {
		c.Failf(sn, "%v: lenet5 reads [1, %d, %d] (one channel of %d × %d pixels)", in.Shape, arch.ImageSize, arch.ImageSize, arch.ImageSize, arch.ImageSize)
	}
	image := len(in.Shape) == 2 || len(in.Shape) == 3 && in.Shape[0] == 1
	if in.DataType == UINT8 && !image {
		c.Failf(f["datatype"], "UINT8 is for images, shape [1, height, width] or [height, width]; %v is not one", in.Shape)
	}
	if fn, ok := f["features"]; ok {
		names, nodes, err := fn.StrList()
		switch {
		case err != nil:
			c.Add(err)
		case len(in.Shape) != 1:
			c.Failf(fn, "only for a table: a shape of one dimension, [features]")
		case int64(len(names)) != in.Shape[0]:
			c.Failf(fn, "%d features for a shape of %v", len(names), in.Shape)
		default:
			seen := map[string]bool{}
			for i, s := range names {
				if s == "" || len(s) > 1024 || !utf8.ValidString(s) || seen[s] {
					c.Failf(nodes[i], "column %q is empty, too long, not UTF-8 or listed twice", s)
				}
				seen[s] = true
			}
			in.Features = names
		}
	}
	return in
}

func parseOutput(n job.Node, c *job.Checker) (_ Output, explicit bool) {
	out := Output{Kind: LogProbabilities, Name: DefaultOutputName}
	f, ok := n.CheckedFields(c, "kind", "name", "labels")
	if !ok {
		return out, false
	}
	if kn, ok := f["kind"]; ok {
		explicit = true
		if v, err := kn.Str(); err != nil {
			c.Add(err)
		} else if v != LogProbabilities && v != Logits && v != Probabilities {
			c.Failf(kn, "%q: want log_probabilities (the forward ends with log_softmax), logits (it ends with the last linear layer) or probabilities (with softmax)", v)
		} else {
			out.Kind = v
		}
	}
	if nn, ok := f["name"]; ok {
		if v, err := nn.Str(); err != nil {
			c.Add(err)
		} else if !tensorName(v) || v == "probability" || v == "prediction" || v == "label" {
			c.Failf(nn, "%q: want 1 to 64 letters, digits, '_', '.' or '-', other than probability, prediction and label (served beside it)", v)
		} else {
			out.Name = v
		}
	}
	if ln, ok := f["labels"]; ok {
		labels, nodes, err := ln.StrList()
		switch {
		case err != nil:
			c.Add(err)
		case len(labels) < 2 || len(labels) > arch.MaxClasses:
			c.Failf(ln, "%d labels: want one per class, 2 to %d", len(labels), arch.MaxClasses)
		default:
			seen := map[string]bool{}
			for i, s := range labels {
				if s == "" || len(s) > MaxLabelLen || !utf8.ValidString(s) || seen[s] {
					c.Failf(nodes[i], "label %q is empty, longer than %d bytes, not UTF-8 or listed twice", s, MaxLabelLen)
				}
				seen[s] = true
			}
			out.Labels = labels
		}
	}
	return out, explicit
}

func tensorName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// String describes the declaration in errors and logs.
func (m *Model) String() string {
	a := string(m.Architecture)
	if m.Architecture == arch.Layers {
		var ls []string
		for _, l := range m.Layers {
			ls = append(ls, l.String())
		}
		a = "layers [" + strings.Join(ls, ", ") + "]"
	}
	return fmt.Sprintf("%s, %d classes, input %s %s %v, output %s", a, m.Classes, m.Input.Name, m.Input.DataType, m.Input.Shape, m.Output.Kind)
}
