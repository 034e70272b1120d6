package arch

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ppml/ppml/dl/ptfile"
)

// Layers is an architecture declared layer by layer (dl/declared): a plain PyTorch model —
// an nn.Sequential, or a module whose forward applies its submodules one after the other —
// described by the job as a list of layers from a fixed set (LayerOps). ppml computes the
// forward from the list; the model file contributes the layers' tensors.
const Layers Kind = "layers"

// Layer operations. Those with tensors (linear, conv2d, batch_norm) take them from one
// module of the file each.
const (
	OpLinear            = "linear"              // torch.nn.Linear(in, out, bias)
	OpConv2d            = "conv2d"              // torch.nn.Conv2d(in, out, kernel, stride, padding, bias)
	OpBatchNorm         = "batch_norm"          // BatchNorm1d/2d(features, eps), in eval mode
	OpReLU              = "relu"                // nn.ReLU, F.relu, torch.relu
	OpTanh              = "tanh"                // nn.Tanh, torch.tanh
	OpSigmoid           = "sigmoid"             // nn.Sigmoid, torch.sigmoid
	OpMaxPool2d         = "max_pool2d"          // nn.MaxPool2d(kernel, stride, padding)
	OpAvgPool2d         = "avg_pool2d"          // nn.AvgPool2d(kernel, stride, padding)
	OpAdaptiveAvgPool2d = "adaptive_avg_pool2d" // nn.AdaptiveAvgPool2d(size)
	OpFlatten           = "flatten"             // nn.Flatten(), torch.flatten(x, 1)
	OpDropout           = "dropout"             // nn.Dropout: nothing at inference
)

// LayerOps lists the operations a declared layer may have.
var LayerOps = []string{OpLinear, OpConv2d, OpBatchNorm, OpReLU, OpTanh, OpSigmoid, OpMaxPool2d, OpAvgPool2d, OpAdaptiveAvgPool2d, OpFlatten, OpDropout}

// Limits of declared layers.
const (
	MaxDeclaredLayers = 64
	MaxKernel         = 64
	// MaxActivations bounds the values one example has after any layer.
	MaxActivations = 1 << 24
)

// Layer is one declared layer. Sizes are those of the PyTorch module it stands for; Kernel,
// Stride, Padding and Size are [height, width].
type Layer struct {
	Op      string  `json:"op"`
	In      int     `json:"in,omitempty"`
	Out     int     `json:"out,omitempty"`
	Kernel  []int   `json:"kernel,omitempty"`
	Stride  []int   `json:"stride,omitempty"`
	Padding []int   `json:"padding,omitempty"`
	Size    []int   `json:"size,omitempty"`
	Bias    bool    `json:"bias,omitempty"`
	Eps     float64 `json:"eps,omitempty"`
	// Module names the file's module holding the layer's tensors ("features.0"); empty: the
	// next module of the file, in the file's order.
	Module string `json:"module,omitempty"`
}

// HasTensors reports whether the layer takes tensors from the file.
func (l Layer) HasTensors() bool {
	return l.Op == OpLinear || l.Op == OpConv2d || l.Op == OpBatchNorm
}

// String describes the layer in errors ("conv2d 1→32 3×3").
func (l Layer) String() string {
	switch l.Op {
	case OpLinear:
		return fmt.Sprintf("linear %d→%d", l.In, l.Out)
	case OpConv2d:
		return fmt.Sprintf("conv2d %d→%d %d×%d", l.In, l.Out, at(l.Kernel, 0), at(l.Kernel, 1))
	case OpBatchNorm:
		return fmt.Sprintf("batch_norm %d", l.In)
	}
	return l.Op
}

func at(s []int, i int) int {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// layerModule is the submodule holding layer i's tensors in ppml's model.
func layerModule(i int) string { return "layer" + strconv.Itoa(i) }

func (c Config) layerShapes() []Shape {
	var s []Shape
	for i, l := range c.Layers {
		name := layerModule(i)
		switch l.Op {
		case OpLinear:
			s = append(s, Shape{name + ".weight", []int64{int64(l.Out), int64(l.In)}, l.In, false})
			if l.Bias {
				s = append(s, Shape{name + ".bias", []int64{int64(l.Out)}, l.In, false})
			}
		case OpConv2d:
			fan := l.In * at(l.Kernel, 0) * at(l.Kernel, 1)
			s = append(s, Shape{name + ".weight", []int64{int64(l.Out), int64(l.In), int64(at(l.Kernel, 0)), int64(at(l.Kernel, 1))}, fan, false})
			if l.Bias {
				s = append(s, Shape{name + ".bias", []int64{int64(l.Out)}, fan, false})
			}
		case OpBatchNorm:
			f := []int64{int64(l.In)}
			s = append(s, Shape{name + ".weight", f, 0, false}, Shape{name + ".bias", f, 0, false},
				Shape{name + ".running_mean", f, 0, true}, Shape{name + ".running_var", f, 0, true})
		}
	}
	return s
}

func pair(v []int) string { return fmt.Sprintf("[%d, %d]", at(v, 0), at(v, 1)) }

func pyFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// layerSource is the TorchScript of a declared model's forward: one statement per layer,
// built from the validated sizes only (numbers and ppml's own submodule names).
func (c Config) layerSource(ret string) string {
	var b strings.Builder
	b.WriteString("\ndef forward(self, x: Tensor) -> Tensor:\n")
	for i, l := range c.Layers {
		m := "self." + layerModule(i)
		bias := "None"
		if l.Bias {
			bias = m + ".bias"
		}
		switch l.Op {
		case OpLinear:
			fmt.Fprintf(&b, "    x = torch.linear(x, %s.weight, %s)\n", m, bias)
		case OpConv2d:
			fmt.Fprintf(&b, "    x = torch.conv2d(x, %s.weight, %s, %s, %s)\n", m, bias, pair(l.Stride), pair(l.Padding))
		case OpBatchNorm:
			// Inference: the running statistics, never updated (training False).
			fmt.Fprintf(&b, "    x = torch.batch_norm(x, %s.weight, %s.bias, %s.running_mean, %s.running_var, False, 0.1, %s, False)\n", m, m, m, m, pyFloat(l.Eps))
		case OpReLU, OpTanh, OpSigmoid:
			fmt.Fprintf(&b, "    x = torch.%s(x)\n", l.Op)
		case OpMaxPool2d:
			fmt.Fprintf(&b, "    x = torch.max_pool2d(x, %s, %s, %s)\n", pair(l.Kernel), pair(l.Stride), pair(l.Padding))
		case OpAvgPool2d:
			fmt.Fprintf(&b, "    x = torch.avg_pool2d(x, %s, %s, %s)\n", pair(l.Kernel), pair(l.Stride), pair(l.Padding))
		case OpAdaptiveAvgPool2d:
			fmt.Fprintf(&b, "    x = torch.adaptive_avg_pool2d(x, %s)\n", pair(l.Size))
		case OpFlatten:
			b.WriteString("    x = torch.flatten(x, 1)\n")
		case OpDropout:
			// Identity at inference.
		}
	}
	b.WriteString(ret)
	return b.String()
}

// validateLayers checks each layer's sizes and follows one example's shape from the input
// (Config.Shape) through the layers: every layer must fit what it is given, and the last must
// give Classes values. Errors name the layer (numbered from 1, as a user counts a list).
func (c Config) validateLayers() error {
	if c.Inputs != 0 || c.Hidden != nil || c.VocabSize != 0 || c.EmbeddingDim != 0 {
		return errors.New("layers: no inputs, hidden, vocab_size or embedding_dim (the layers say it all)")
	}
	if len(c.Layers) < 1 || len(c.Layers) > MaxDeclaredLayers {
		return fmt.Errorf("layers: %d layers (want 1 to %d)", len(c.Layers), MaxDeclaredLayers)
	}
	if len(c.Shape) < 1 || len(c.Shape) > 4 {
		return fmt.Errorf("layers: input shape %v (want 1 to 4 dimensions)", c.Shape)
	}
	shape := make([]int64, len(c.Shape))
	copy(shape, c.Shape)
	n := int64(1)
	for _, d := range shape {
		if d < 1 || d > MaxInputs {
			return fmt.Errorf("layers: input shape %v", c.Shape)
		}
		n *= d
		if n > MaxInputs {
			return fmt.Errorf("layers: input shape %v: more than %d values", c.Shape, MaxInputs)
		}
	}
	modules := map[string]bool{}
	for i, l := range c.Layers {
		next, err := l.apply(shape)
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i+1, l, err)
		}
		if l.Module != "" {
			if !l.HasTensors() {
				return fmt.Errorf("layer %d (%s): module is only for layers with tensors (linear, conv2d, batch_norm)", i+1, l)
			}
			if !moduleName(l.Module) || modules[l.Module] {
				return fmt.Errorf("layer %d (%s): module %q is not a dotted module name, or is named twice", i+1, l, l.Module)
			}
			modules[l.Module] = true
		}
		n := int64(1)
		for _, d := range next {
			if d < 1 {
				return fmt.Errorf("layer %d (%s): gives shape %v from %v: the input is too small", i+1, l, next, shape)
			}
			n *= d
			if n > MaxActivations {
				return fmt.Errorf("layer %d (%s): more than %d values per example", i+1, l, MaxActivations)
			}
		}
		shape = next
	}
	if len(shape) != 1 || shape[0] != int64(c.Classes) {
		return fmt.Errorf("layers: the last layer gives shape %v per example, want [%d] (one value per class)", shape, c.Classes)
	}
	return nil
}

// moduleName reports whether s is a dotted PyTorch module path: "features.0", "fc1".
func moduleName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return false
		}
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
				return false
			}
		}
	}
	return true
}

func pos(v []int, what string, lo, hi int) error {
	if len(v) != 2 {
		return fmt.Errorf("%s needs two values, [height, width]", what)
	}
	for _, x := range v {
		if x < lo || x > hi {
			return fmt.Errorf("%s %v: each must be between %d and %d", what, v, lo, hi)
		}
	}
	return nil
}

// apply checks the layer and gives the shape of one example after it.
func (l Layer) apply(in []int64) ([]int64, error) {
	image := func() error {
		if len(in) != 3 {
			return fmt.Errorf("needs an input of [channels, height, width], it gets %v", in)
		}
		return nil
	}
	window := func(k, s, p []int, name string) ([]int64, error) {
		if err := image(); err != nil {
			return nil, err
		}
		if err := pos(k, "kernel", 1, MaxKernel); err != nil {
			return nil, err
		}
		if err := pos(s, "stride", 1, MaxKernel); err != nil {
			return nil, err
		}
		if err := pos(p, "padding", 0, MaxKernel); err != nil {
			return nil, err
		}
		if name != OpConv2d && (2*p[0] > k[0] || 2*p[1] > k[1]) {
			return nil, fmt.Errorf("padding %v is more than half the kernel %v", p, k)
		}
		h := (in[1]+2*int64(p[0])-int64(k[0]))/int64(s[0]) + 1
		w := (in[2]+2*int64(p[1])-int64(k[1]))/int64(s[1]) + 1
		if in[1]+2*int64(p[0]) < int64(k[0]) || in[2]+2*int64(p[1]) < int64(k[1]) {
			return nil, fmt.Errorf("kernel %v is larger than its padded input %v", k, in[1:])
		}
		return []int64{in[0], h, w}, nil
	}
	if l.Module != "" && !l.HasTensors() {
		return nil, errors.New("module is only for layers with tensors")
	}
	switch l.Op {
	case OpLinear:
		if l.In < 1 || l.In > MaxInputs || l.Out < 1 || l.Out > MaxHidden {
			return nil, fmt.Errorf("in %d, out %d: want in 1 to %d, out 1 to %d", l.In, l.Out, MaxInputs, MaxHidden)
		}
		if len(in) != 1 {
			return nil, fmt.Errorf("needs a flat input, it gets %v (add flatten before it)", in)
		}
		if in[0] != int64(l.In) {
			return nil, fmt.Errorf("takes %d values, the layer before gives %d", l.In, in[0])
		}
		return []int64{int64(l.Out)}, nil
	case OpConv2d:
		if l.In < 1 || l.In > MaxHidden || l.Out < 1 || l.Out > MaxHidden {
			return nil, fmt.Errorf("in %d, out %d: want 1 to %d channels", l.In, l.Out, MaxHidden)
		}
		out, err := window(l.Kernel, l.Stride, l.Padding, OpConv2d)
		if err != nil {
			return nil, err
		}
		if in[0] != int64(l.In) {
			return nil, fmt.Errorf("takes %d channels, the layer before gives %d", l.In, in[0])
		}
		out[0] = int64(l.Out)
		return out, nil
	case OpBatchNorm:
		if l.In < 1 || l.In > MaxHidden {
			return nil, fmt.Errorf("features %d: want 1 to %d", l.In, MaxHidden)
		}
		if !(l.Eps > 0 && l.Eps < 1) {
			return nil, fmt.Errorf("eps %v: want more than 0 and less than 1", l.Eps)
		}
		if len(in) != 1 && len(in) != 3 || in[0] != int64(l.In) {
			return nil, fmt.Errorf("normalizes %d features (the first dimension of [features] or [channels, height, width]), it gets %v", l.In, in)
		}
		return in, nil
	case OpMaxPool2d, OpAvgPool2d:
		return window(l.Kernel, l.Stride, l.Padding, l.Op)
	case OpAdaptiveAvgPool2d:
		if err := image(); err != nil {
			return nil, err
		}
		if err := pos(l.Size, "size", 1, MaxInputs); err != nil {
			return nil, err
		}
		return []int64{in[0], int64(l.Size[0]), int64(l.Size[1])}, nil
	case OpFlatten:
		n := int64(1)
		for _, d := range in {
			n *= d
		}
		return []int64{n}, nil
	case OpReLU, OpTanh, OpSigmoid, OpDropout:
		return in, nil
	}
	return nil, fmt.Errorf("operation %q (want %s)", l.Op, strings.Join(LayerOps, ", "))
}

// group is one module's tensors: the module's dotted path and its tensors by leaf name.
type group struct {
	module string
	leaves []string
	ts     []*ptfile.Tensor
}

func groups(names []string, ts []*ptfile.Tensor) []*group {
	var out []*group
	idx := map[string]*group{}
	for i, n := range names {
		mod, leaf := "", n
		if k := strings.LastIndexByte(n, '.'); k >= 0 {
			mod, leaf = n[:k], n[k+1:]
		}
		if mod == "" {
			continue
		}
		g, ok := idx[mod]
		if !ok {
			g = &group{module: mod}
			idx[mod] = g
			out = append(out, g)
		}
		g.leaves = append(g.leaves, leaf)
		if ts != nil {
			g.ts = append(g.ts, ts[i])
		}
	}
	return out
}

// byModule gives the file's tensors ppml's names. A file written by ppml, or by PyTorch with
// the module names of ppml's classes (docs/dl.md), has them already. Any other — an
// nn.Sequential ("0.weight", "3.weight"), a module with submodules ("features.0.weight",
// "classifier.1.weight") — is read module by module: the architecture's modules in order take
// the file's modules holding tensors in the file's order (the order in which the Python
// module registered them), or, for a declared layer naming its module, that module; each
// must hold exactly the tensors its layer needs. Batch norms' num_batches_tracked counters,
// which inference does not use, are left out. from maps each of ppml's names to the file's.
func (c Config) byModule(ts []*ptfile.Tensor) ([]*ptfile.Tensor, map[string]string, error) {
	var kept []*ptfile.Tensor
	var names []string
	has := map[string]bool{}
	for _, t := range ts {
		has[t.Name] = true
	}
	for _, t := range ts {
		if mod, ok := strings.CutSuffix(t.Name, ".num_batches_tracked"); ok && t.DType != ptfile.Float32 && has[mod+".running_mean"] {
			continue
		}
		kept = append(kept, t)
		names = append(names, t.Name)
	}
	var want []string
	for _, s := range c.Shapes() {
		want = append(want, s.Name)
	}
	wantG, fileG := groups(want, nil), groups(names, kept)
	byMod := map[string]*group{}
	for _, g := range fileG {
		byMod[g.module] = g
	}
	if c.Kind != Layers {
		exact := true
		for _, g := range wantG {
			exact = exact && byMod[g.module] != nil
		}
		if exact {
			return kept, nil, nil
		}
	}
	// The layer each of the architecture's modules stands for, and the module it names.
	what, pin := map[string]string{}, map[string]string{}
	for i, l := range c.Layers {
		if l.HasTensors() {
			what[layerModule(i)] = fmt.Sprintf("layer %d (%s)", i+1, l)
			pin[layerModule(i)] = l.Module
		}
	}
	describe := func(g *group) string {
		if w, ok := what[g.module]; ok {
			return w
		}
		return "module " + g.module
	}
	fileList := func() string {
		var s []string
		for _, g := range fileG {
			var ls []string
			for i, l := range g.leaves {
				ls = append(ls, fmt.Sprintf("%s %v", l, g.ts[i].Shape))
			}
			s = append(s, fmt.Sprintf("%s {%s}", g.module, strings.Join(ls, ", ")))
		}
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, "; ")
	}
	if len(wantG) != len(fileG) {
		return nil, nil, fmt.Errorf("%s model: the architecture has %d modules with tensors, the file %d (in order: %s)", c.Kind, len(wantG), len(fileG), fileList())
	}
	used := map[string]bool{}
	match := make([]*group, len(wantG))
	for i, g := range wantG {
		if p := pin[g.module]; p != "" {
			f, ok := byMod[p]
			if !ok {
				return nil, nil, fmt.Errorf("%s model: %s names module %s, which the file does not hold (its modules: %s)", c.Kind, describe(g), p, fileList())
			}
			match[i], used[p] = f, true
		}
	}
	next := 0
	for i := range wantG {
		if match[i] != nil {
			continue
		}
		for used[fileG[next].module] {
			next++
		}
		match[i] = fileG[next]
		used[fileG[next].module] = true
		next++
	}
	from := map[string]string{}
	var out []*ptfile.Tensor
	for _, t := range kept {
		if !strings.Contains(t.Name, ".") {
			out = append(out, t) // the root module's own tensors keep their names
			from[t.Name] = t.Name
		}
	}
	for i, g := range wantG {
		f := match[i]
		a, b := slices.Clone(g.leaves), slices.Clone(f.leaves)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			return nil, nil, fmt.Errorf("%s model: %s takes the file's module %s, which holds %s; it needs %s (the file's modules in order: %s)",
				c.Kind, describe(g), f.module, strings.Join(b, ", "), strings.Join(a, ", "), fileList())
		}
		for j, t := range f.ts {
			n := g.module + "." + f.leaves[j]
			from[n] = t.Name
			r := *t
			r.Name = n
			out = append(out, &r)
		}
	}
	return out, from, nil
}
