package declared

import (
	"slices"
	"strconv"
	"strings"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/job"
)

// Defaults of declared layers: PyTorch's.
const (
	DefaultEps = 1e-5 // nn.BatchNorm1d/2d
)

// Operations that may end the list instead of output.kind: the module's forward ends with
// them, and ppml computes them from the last layer's values.
const (
	opLogSoftmax = "log_softmax"
	opSoftmax    = "softmax"
)

// layerFields are the fields each operation takes ("bare" operations take none and may be
// written as a plain string: relu).
var layerFields = map[string][]string{
	arch.OpLinear:            {"in", "out", "bias", "module"},
	arch.OpConv2d:            {"in", "out", "kernel", "stride", "padding", "bias", "module"},
	arch.OpBatchNorm:         {"features", "eps", "module"},
	arch.OpMaxPool2d:         {"kernel", "stride", "padding"},
	arch.OpAvgPool2d:         {"kernel", "stride", "padding"},
	arch.OpAdaptiveAvgPool2d: {"size"},
	arch.OpReLU:              nil,
	arch.OpTanh:              nil,
	arch.OpSigmoid:           nil,
	arch.OpFlatten:           nil,
	arch.OpDropout:           nil,
	opLogSoftmax:             nil,
	opSoftmax:                nil,
}

func opList() string {
	return strings.Join(append(slices.Clone(arch.LayerOps), opLogSoftmax, opSoftmax), ", ")
}

// parseLayers reads architecture layers' list: each item an operation's name (relu) or a
// mapping of one operation to its fields ({conv2d: {in: 1, out: 32, kernel: 3}}). A final
// log_softmax or softmax is returned as the output kind it makes.
func parseLayers(n job.Node, c *job.Checker) ([]arch.Layer, string) {
	items, err := n.Items()
	if err != nil {
		c.Add(err)
		return nil, ""
	}
	if len(items) < 1 || len(items) > arch.MaxDeclaredLayers {
		c.Failf(n, "%d layers: want 1 to %d", len(items), arch.MaxDeclaredLayers)
		return nil, ""
	}
	var out []arch.Layer
	final := ""
	for i, it := range items {
		var op string
		var fields map[string]job.Node
		var at job.Node
		if it.IsScalar() {
			if op, err = it.Str(); err != nil {
				c.Add(err)
				continue
			}
			at = it
		} else {
			es, err := it.Entries()
			if err != nil {
				c.Add(err)
				continue
			}
			if len(es) != 1 {
				c.Failf(it, "a layer is an operation's name (relu) or one operation with its fields ({linear: {in: 784, out: 10}})")
				continue
			}
			op, at = es[0].Name, es[0].Key
			if _, ok := layerFields[op]; ok && len(layerFields[op]) > 0 {
				if fields, ok = es[0].Value.CheckedFields(c, layerFields[op]...); !ok {
					continue
				}
			} else if ok && !es[0].Value.IsMapping() && !es[0].Value.IsScalar() {
				fields = map[string]job.Node{} // relu: (null)
			} else if ok {
				c.Failf(es[0].Value, "%s takes no fields", op)
				continue
			}
		}
		want, known := layerFields[op]
		if !known {
			c.Failf(at, "%q: want one of %s", op, opList())
			continue
		}
		if op == opLogSoftmax || op == opSoftmax {
			if i != len(items)-1 {
				c.Failf(at, "%s only as the last layer (over the classes)", op)
				continue
			}
			final = map[string]string{opLogSoftmax: LogProbabilities, opSoftmax: Probabilities}[op]
			continue
		}
		if fields == nil && len(want) > 0 {
			c.Failf(at, "%s needs its fields: %s", op, strings.Join(want, ", "))
			continue
		}
		if l, ok := parseLayer(op, at, fields, c); ok {
			out = append(out, l)
		}
	}
	return out, final
}

func parseLayer(op string, at job.Node, f map[string]job.Node, c *job.Checker) (arch.Layer, bool) {
	l := arch.Layer{Op: op}
	ok := true
	// field returns the field called name, and fails the layer when it is required and absent.
	field := func(name string, required bool) (job.Node, bool) {
		n, has := f[name]
		if !has && required {
			c.Failf(at, "%s needs %s", op, name)
			ok = false
		}
		return n, has
	}
	integer := func(name string, required bool, def int) int {
		n, has := field(name, required)
		if !has {
			return def
		}
		v, err := n.Int()
		if err != nil {
			c.Add(err)
			ok = false
			return def
		}
		if v < 0 || v > arch.MaxInputs {
			c.Failf(n, "%d: want 0 to %d", v, arch.MaxInputs)
			ok = false
			return def
		}
		return int(v)
	}
	// pair reads an integer or [height, width].
	pair := func(name string, required bool, def []int) []int {
		n, has := field(name, required)
		if !has {
			return def
		}
		if n.IsScalar() {
			v, err := n.Int()
			if err != nil || v < 0 || v > arch.MaxInputs {
				c.Failf(n, "want a size or [height, width] between 0 and %d", arch.MaxInputs)
				ok = false
				return def
			}
			return []int{int(v), int(v)}
		}
		items, err := n.Items()
		if err != nil || len(items) != 2 {
			c.Failf(n, "want a size or [height, width]")
			ok = false
			return def
		}
		var out []int
		for _, it := range items {
			v, err := it.Int()
			if err != nil || v < 0 || v > arch.MaxInputs {
				c.Failf(it, "want a size between 0 and %d", arch.MaxInputs)
				ok = false
				return def
			}
			out = append(out, int(v))
		}
		return out
	}
	boolean := func(name string, def bool) bool {
		n, has := f[name]
		if !has {
			return def
		}
		v, err := n.Str()
		if err != nil || v != "true" && v != "false" {
			c.Failf(n, "want true or false")
			ok = false
			return def
		}
		return v == "true"
	}
	if mn, has := f["module"]; has {
		v, err := mn.Str()
		if err != nil {
			c.Add(err)
			ok = false
		} else {
			l.Module = v
		}
	}
	switch op {
	case arch.OpLinear:
		l.In, l.Out, l.Bias = integer("in", true, 0), integer("out", true, 0), boolean("bias", true)
	case arch.OpConv2d:
		l.In, l.Out, l.Bias = integer("in", true, 0), integer("out", true, 0), boolean("bias", true)
		l.Kernel = pair("kernel", true, nil)
		l.Stride, l.Padding = pair("stride", false, []int{1, 1}), pair("padding", false, []int{0, 0})
	case arch.OpBatchNorm:
		l.In, l.Eps = integer("features", true, 0), DefaultEps
		if en, has := f["eps"]; has {
			s, err := en.Str()
			v, perr := strconv.ParseFloat(s, 64)
			if err != nil || perr != nil || !(v > 0 && v < 1) {
				c.Failf(en, "want a number more than 0 and less than 1")
				ok = false
			} else {
				l.Eps = v
			}
		}
	case arch.OpMaxPool2d, arch.OpAvgPool2d:
		l.Kernel = pair("kernel", true, nil)
		l.Stride = pair("stride", false, l.Kernel) // PyTorch: the stride is the kernel's
		l.Padding = pair("padding", false, []int{0, 0})
	case arch.OpAdaptiveAvgPool2d:
		l.Size = pair("size", true, nil)
	}
	return l, ok
}

// canonicalLayers writes the layers with every default explicit, for the job digest.
func canonicalLayers(ls []arch.Layer) []any {
	ints := func(v []int) []any {
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out
	}
	var out []any
	for _, l := range ls {
		m := map[string]any{"op": l.Op}
		switch l.Op {
		case arch.OpLinear:
			m["in"], m["out"], m["bias"] = int64(l.In), int64(l.Out), l.Bias
		case arch.OpConv2d:
			m["in"], m["out"], m["bias"] = int64(l.In), int64(l.Out), l.Bias
			m["kernel"], m["stride"], m["padding"] = ints(l.Kernel), ints(l.Stride), ints(l.Padding)
		case arch.OpBatchNorm:
			m["features"], m["eps"] = int64(l.In), strconv.FormatFloat(l.Eps, 'g', -1, 64)
		case arch.OpMaxPool2d, arch.OpAvgPool2d:
			m["kernel"], m["stride"], m["padding"] = ints(l.Kernel), ints(l.Stride), ints(l.Padding)
		case arch.OpAdaptiveAvgPool2d:
			m["size"] = ints(l.Size)
		}
		if l.Module != "" {
			m["module"] = l.Module
		}
		out = append(out, m)
	}
	if out == nil {
		out = []any{}
	}
	return out
}
