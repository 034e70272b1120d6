// Package dlspec reads and checks the parameters of dl engine jobs (docs/dl.md, "Jobs"): the
// pure-Go half of the engine, which the key service and the CLI use to compute job digests
// without linking libtorch.
package dlspec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/declared"
	"github.com/ppml/ppml/job"
)

// Name is the manifest's engine value.
const Name = "dl"

// DefaultThreads is resources.threads for a dl job whose manifest omits it: one libtorch
// thread, which makes training reproducible (same seed, same model bytes).
const DefaultThreads = 1

// Task is what a job does.
type Task string

const (
	Train    Task = "train"
	Predict  Task = "predict"
	Evaluate Task = "evaluate"
)

// Optimizers.
const (
	SGD  = "sgd"
	Adam = "adam"
)

// Input and output names.
const (
	InputImages       = "images"
	InputLabels       = "labels"
	InputTestImages   = "test_images"
	InputTestLabels   = "test_labels"
	InputTrain        = "train"
	InputData         = "data"
	InputModel        = "model"
	OutputModel       = "model"
	OutputStateDict   = "state_dict"
	OutputReport      = "report"
	OutputPredictions = "predictions"
)

// AllExceptLabel selects every column but the label as features.
const AllExceptLabel = "all_except_label"

// Defaults.
const (
	DefaultEpochs       = 3
	DefaultBatchSize    = 128
	DefaultSGDRate      = 0.05
	DefaultAdamRate     = 0.001
	DefaultMomentum     = 0.9
	DefaultLRGamma      = 0.1 // StepLR's
	DefaultEmbeddingDim = 64
	DefaultVocabSize    = 20000
	DefaultMaxTokens    = 256
	DefaultTestFraction = 0.2
	DefaultLabel        = "label"
	DefaultText         = "text"
)

// DefaultHidden is the MLP's hidden layers by default.
var DefaultHidden = []int{128}

// Limits on parameter values.
const (
	MaxEpochs    = 10000
	MaxBatchSize = 65536
	MaxTokens    = 100000
)

// Params are a dl job's validated parameters, every default filled in.
type Params struct {
	Task Task
	// Model is the architecture: required to train; for predict and evaluate it declares the
	// architecture of a model file without ppml metadata (and must match one with it).
	Model arch.Kind
	// Declared describes a model file without ppml metadata in full (predict and evaluate:
	// parameters.torchscript), in place of Model.
	Declared *declared.Model
	// BatchSize applies to every task (prediction runs in batches too).
	BatchSize int

	// Training only.
	Optimizer    string
	LearningRate float64
	Momentum     float64 // sgd only
	WeightDecay  float64
	Epochs       int
	// LRStepEpochs > 0 multiplies the learning rate by LRGamma every LRStepEpochs epochs
	// (PyTorch's StepLR); 0 keeps it constant.
	LRStepEpochs int
	LRGamma      float64
	Seed         uint64
	Classes      int   // 0: one more than the largest training label
	Hidden       []int // mlp
	EmbeddingDim int   // text
	VocabSize    int   // text
	MaxTokens    int   // text

	// Table inputs (train, data): the columns. Features nil means every column but the label;
	// Text is the text column of the text classifier. TestFraction holds out rows for metrics.
	Features     []string
	Label        string
	Text         string
	TestFraction float64

	// Images is set by CheckManifest when the data are IDX files (images, labels inputs)
	// rather than a table.
	Images bool

	present map[string]job.Node
}

// Canonical implements job.Parameters: every parameter that applies, defaults explicit,
// fractional numbers as their shortest decimal text.
func (p *Params) Canonical() map[string]any {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	m := map[string]any{"task": string(p.Task), "model": string(p.Model), "batch_size": int64(p.BatchSize)}
	if p.Task == Evaluate && !p.Images {
		m["label"] = p.Label
	}
	if p.Declared != nil {
		m["torchscript"] = p.Declared.Canonical()
	}
	if p.Task != Train {
		return m
	}
	m["optimizer"] = p.Optimizer
	m["learning_rate"] = f(p.LearningRate)
	if p.Optimizer == SGD {
		m["momentum"] = f(p.Momentum)
	}
	m["weight_decay"] = f(p.WeightDecay)
	m["epochs"] = int64(p.Epochs)
	if p.LRStepEpochs > 0 { // absent otherwise, so digests of jobs without a schedule stay as they were
		m["lr_step_epochs"] = int64(p.LRStepEpochs)
		m["lr_gamma"] = f(p.LRGamma)
	}
	m["seed"] = strconv.FormatUint(p.Seed, 10)
	m["classes"] = int64(p.Classes)
	switch p.Model {
	case arch.MLP:
		h := []any{}
		for _, v := range p.Hidden {
			h = append(h, int64(v))
		}
		m["hidden"] = h
	case arch.Text:
		m["embedding_dim"] = int64(p.EmbeddingDim)
		m["vocab_size"] = int64(p.VocabSize)
		m["max_tokens"] = int64(p.MaxTokens)
		m["text"] = p.Text
	}
	if !p.Images {
		m["label"] = p.Label
		m["test_fraction"] = f(p.TestFraction)
		if p.Model == arch.MLP {
			if p.Features == nil {
				m["features"] = AllExceptLabel
			} else {
				fs := []any{}
				for _, v := range p.Features {
					fs = append(fs, v)
				}
				m["features"] = fs
			}
		}
	}
	return m
}

// UsesLibtorch reports that the job runs on libtorch, in ppml-run-dl (every dl job does).
func (p *Params) UsesLibtorch() bool { return true }

// Spec is the dl engine's job.Spec (listed in engine/specs.All).
var Spec job.Spec = spec{}

type spec struct{}

func (spec) Name() string { return Name }

// DefaultThreads implements job.ThreadsDefaulter.
func (spec) DefaultThreads() int { return DefaultThreads }

var (
	commonFields = []string{"task", "model", "batch_size", "torchscript"}
	trainFields  = []string{"optimizer", "learning_rate", "momentum", "weight_decay", "epochs", "lr_step_epochs", "lr_gamma", "seed", "classes",
		"hidden", "embedding_dim", "vocab_size", "max_tokens", "features", "label", "text", "test_fraction"}
)

// ParseParameters reads the parameters section: unknown fields, wrong types, values out of
// range and fields that do not apply to the task or model are problems at their field.
func (spec) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required for engine dl (at least task and, to train, model)")
		return nil
	}
	fs, ok := n.CheckedFields(c, append(slices.Clone(commonFields), trainFields...)...)
	if !ok {
		return nil
	}
	p := &Params{present: fs, BatchSize: DefaultBatchSize}
	r := reader{fs: fs, c: c, n: n}
	task, ok := r.str("task")
	if !ok {
		if _, there := fs["task"]; !there {
			c.Failf(n.Missing("task"), "required: train, predict or evaluate")
		}
		return nil
	}
	p.Task = Task(task)
	if p.Task != Train && p.Task != Predict && p.Task != Evaluate {
		c.Failf(fs["task"], "%q: want train, predict or evaluate", task)
		return nil
	}
	if v, ok := r.str("model"); ok {
		p.Model = arch.Kind(v)
		if !slices.Contains(arch.Kinds, p.Model) {
			c.Failf(fs["model"], "%q: want lenet5, mlp or text", v)
			return nil
		}
	} else if _, there := fs["model"]; !there && p.Task == Train {
		c.Failf(n.Missing("model"), "required to train: lenet5, mlp or text")
		return nil
	}
	p.BatchSize = r.intIn("batch_size", DefaultBatchSize, 1, MaxBatchSize)
	if tn, there := fs["torchscript"]; there {
		switch {
		case p.Task == Train:
			c.Failf(tn, "only for tasks predict and evaluate: it describes a model file from elsewhere")
		case p.Model != "":
			c.Failf(fs["model"], "leave out model with torchscript: torchscript.architecture names the architecture")
		default:
			p.Declared = declared.Parse(tn, c)
		}
	}
	if p.Task != Train {
		for _, f := range trainFields {
			if fn, there := fs[f]; there && !(f == "label" && p.Task == Evaluate) {
				c.Failf(fn, "only for task train (%s takes it from the model)", p.Task)
			}
		}
		if v, ok := r.str("label"); ok {
			p.Label = v
		}
		return p
	}

	p.Optimizer = SGD
	if v, ok := r.str("optimizer"); ok {
		if v != SGD && v != Adam {
			c.Failf(fs["optimizer"], "%q: want sgd or adam", v)
		}
		p.Optimizer = v
	}
	p.LearningRate = DefaultSGDRate
	if p.Optimizer == Adam {
		p.LearningRate = DefaultAdamRate
	}
	p.LearningRate = r.float("learning_rate", p.LearningRate, func(v float64) bool { return v > 0 && v <= 10 }, "a number in (0, 10]")
	p.Momentum = DefaultMomentum
	if p.Optimizer == Adam {
		p.Momentum = 0
		if fn, there := fs["momentum"]; there {
			c.Failf(fn, "only for optimizer sgd")
		}
	}
	p.Momentum = r.float("momentum", p.Momentum, func(v float64) bool { return v >= 0 && v < 1 }, "a number in [0, 1)")
	p.WeightDecay = r.float("weight_decay", 0, func(v float64) bool { return v >= 0 && v <= 1 }, "a number in [0, 1]")
	p.Epochs = r.intIn("epochs", DefaultEpochs, 1, MaxEpochs)
	p.LRStepEpochs = r.intIn("lr_step_epochs", 0, 1, MaxEpochs)
	if p.LRStepEpochs > 0 {
		p.LRGamma = r.float("lr_gamma", DefaultLRGamma, func(v float64) bool { return v > 0 && v <= 1 }, "a number in (0, 1]")
	} else if fn, there := fs["lr_gamma"]; there {
		c.Failf(fn, "only with lr_step_epochs (the epochs between two reductions)")
	}
	if v, ok := r.str("seed"); ok {
		u, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			c.Failf(fs["seed"], "%q: want an unsigned 64-bit integer", v)
		}
		p.Seed = u
	}
	p.Classes = r.intIn("classes", 0, 2, arch.MaxClasses)

	only := func(field string, kind arch.Kind) {
		if fn, there := fs[field]; there && p.Model != kind {
			c.Failf(fn, "only for model %s", kind)
		}
	}
	for _, f := range []string{"hidden"} {
		only(f, arch.MLP)
	}
	for _, f := range []string{"embedding_dim", "vocab_size", "max_tokens", "text"} {
		only(f, arch.Text)
	}
	switch p.Model {
	case arch.MLP:
		p.Hidden = slices.Clone(DefaultHidden)
		if hn, there := fs["hidden"]; there {
			p.Hidden = r.intList(hn, 0, arch.MaxLayers, 1, arch.MaxHidden)
		}
	case arch.Text:
		p.EmbeddingDim = r.intIn("embedding_dim", DefaultEmbeddingDim, 1, arch.MaxEmbedding)
		p.VocabSize = r.intIn("vocab_size", DefaultVocabSize, 2, arch.MaxVocab)
		p.MaxTokens = r.intIn("max_tokens", DefaultMaxTokens, 1, MaxTokens)
		p.Text = DefaultText
		if v, ok := r.str("text"); ok {
			if v == "" {
				c.Failf(fs["text"], "must not be empty")
			}
			p.Text = v
		}
	}
	if fn, there := fs["features"]; there {
		if p.Model != arch.MLP {
			c.Failf(fn, "only for model mlp")
		} else if fn.IsScalar() {
			if v, err := fn.Str(); err != nil {
				c.Add(err)
			} else if v != AllExceptLabel {
				c.Failf(fn, "%q: want a list of column names or %s", v, AllExceptLabel)
			}
		} else if list, nodes, err := fn.StrList(); err != nil {
			c.Add(err)
		} else if len(list) == 0 {
			c.Failf(fn, "must not be empty (leave it out, or write %s, for every column but the label)", AllExceptLabel)
		} else {
			seen := map[string]bool{}
			for i, f := range list {
				if f == "" || seen[f] {
					c.Failf(nodes[i], "column %q is empty or listed twice", f)
				}
				seen[f] = true
			}
			p.Features = list
		}
	}
	p.Label = DefaultLabel
	if v, ok := r.str("label"); ok {
		if v == "" {
			c.Failf(fs["label"], "must not be empty")
		} else if slices.Contains(p.Features, v) {
			c.Failf(fs["label"], "column %q is both a feature and the label", v)
		}
		p.Label = v
	}
	if p.Model == arch.Text && p.Text == p.Label {
		c.Failf(n, "text and label name the same column %q", p.Label)
	}
	p.TestFraction = r.float("test_fraction", DefaultTestFraction, func(v float64) bool { return v == 0 || v > 0 && v < 1 },
		"0 (no test split) or a fraction in (0, 1) such as 0.2")
	return p
}

// reader reads typed fields, recording problems.
type reader struct {
	fs map[string]job.Node
	c  *job.Checker
	n  job.Node
}

func (r reader) str(name string) (string, bool) {
	fn, ok := r.fs[name]
	if !ok {
		return "", false
	}
	v, err := fn.Str()
	if err != nil {
		r.c.Add(err)
		return "", false
	}
	return v, true
}

func (r reader) intIn(name string, def, lo, hi int) int {
	fn, ok := r.fs[name]
	if !ok {
		return def
	}
	v, err := fn.Int()
	if err != nil {
		r.c.Add(err)
		return def
	}
	if v < int64(lo) || v > int64(hi) {
		r.c.Failf(fn, "%d: must be between %d and %d", v, lo, hi)
		return def
	}
	return int(v)
}

func (r reader) float(name string, def float64, ok func(float64) bool, want string) float64 {
	s, there := r.str(name)
	if !there {
		return def
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || !ok(v) {
		r.c.Failf(r.fs[name], "%q: want %s", s, want)
		return def
	}
	return v
}

func (r reader) intList(fn job.Node, minLen, maxLen, lo, hi int) []int {
	items, err := fn.Items()
	if err != nil {
		r.c.Add(err)
		return nil
	}
	if len(items) < minLen || len(items) > maxLen {
		r.c.Failf(fn, "%d entries: want %d to %d", len(items), minLen, maxLen)
		return nil
	}
	out := []int{}
	for _, it := range items {
		v, err := it.Int()
		if err != nil {
			r.c.Add(err)
			continue
		}
		if v < int64(lo) || v > int64(hi) {
			r.c.Failf(it, "%d: must be between %d and %d", v, lo, hi)
			continue
		}
		out = append(out, int(v))
	}
	return out
}

// Inputs and outputs a job of these parameters reads and writes.
func (p *Params) names() (reqIn, optIn, reqOut, optOut []string) {
	switch p.Task {
	case Train:
		if p.Images {
			return []string{InputImages, InputLabels}, []string{InputTestImages, InputTestLabels}, []string{OutputModel}, []string{OutputStateDict, OutputReport}
		}
		return nil, []string{InputTrain, InputData}, []string{OutputModel}, []string{OutputStateDict, OutputReport}
	case Predict:
		if p.Images {
			return []string{InputModel, InputImages}, nil, []string{OutputPredictions}, nil
		}
		return []string{InputModel, InputData}, nil, []string{OutputPredictions}, nil
	}
	if p.Images {
		return []string{InputModel, InputImages, InputLabels}, nil, nil, []string{OutputReport, OutputPredictions}
	}
	return []string{InputModel, InputData}, nil, nil, []string{OutputReport, OutputPredictions}
}

// CheckNames checks the manifest's input and output names against the task and decides
// whether the data are IDX files (an input named images) or a table.
func (p *Params) CheckNames(inputs, outputs []string) error {
	p.Images = slices.Contains(inputs, InputImages)
	if p.Task == Train && !p.Images {
		var table []string
		for _, in := range inputs {
			if in == InputTrain || in == InputData {
				table = append(table, in)
			}
		}
		if len(inputs) != 1 || len(table) != 1 {
			return fmt.Errorf("a train job reads images and labels (IDX files, optionally test_images and test_labels) or one table named train (or data); the manifest has inputs %s", list(inputs))
		}
	}
	reqIn, optIn, reqOut, optOut := p.names()
	if err := check(inputs, reqIn, optIn, "input"); err != nil {
		return err
	}
	if p.Images && (slices.Contains(inputs, InputTestImages) != slices.Contains(inputs, InputTestLabels)) {
		return fmt.Errorf("inputs %s and %s go together", InputTestImages, InputTestLabels)
	}
	return check(outputs, reqOut, optOut, "output")
}

func list(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

func check(have, required, optional []string, what string) error {
	for _, r := range required {
		if !slices.Contains(have, r) {
			return fmt.Errorf("missing %s %q (this job has %ss %s)", what, r, what, list(append(slices.Clone(required), optional...)))
		}
	}
	for _, h := range have {
		if !slices.Contains(required, h) && !slices.Contains(optional, h) {
			return fmt.Errorf("unknown %s %q (this job has %ss %s)", what, h, what, list(append(slices.Clone(required), optional...)))
		}
	}
	return nil
}

// CheckManifest implements job.ManifestChecker: the inputs and outputs must fit the task,
// the parameters must fit the kind of data (IDX images or a table), and a predictions output
// is CSV.
func (p *Params) CheckManifest(m *job.Manifest, c *job.Checker) {
	var ins, outs []string
	for _, in := range m.Inputs {
		ins = append(ins, in.Name)
	}
	for _, o := range m.Outputs {
		outs = append(outs, o.Name)
	}
	if err := p.CheckNames(ins, outs); err != nil {
		c.Add(&job.Problem{Field: "inputs/outputs", Message: err.Error()})
		return
	}
	if p.Images {
		if p.Model == arch.Text {
			c.Add(&job.Problem{Field: "parameters.model", Message: "the text classifier reads a table with a text column, not images"})
		}
		for _, f := range []string{"features", "label", "test_fraction"} {
			if fn, there := p.present[f]; there {
				c.Failf(fn, "only for table data (IDX images are labelled by the labels input; test with test_images and test_labels)")
			}
		}
		p.Label, p.TestFraction, p.Features = "", 0, nil
	} else if p.Model == arch.LeNet5 {
		c.Add(&job.Problem{Field: "parameters.model", Message: "lenet5 reads 28 × 28 images from IDX inputs named images and labels, not a table"})
	}
	if d := p.Declared; d != nil && d.Input.Shape != nil {
		_, _, image := d.Image()
		switch {
		case p.Images && (!image || d.Input.Features != nil):
			c.Failf(p.present["torchscript"], "input shape %v: IDX images are read as [1, height, width]", d.Input.Shape)
		case !p.Images && d.Input.Features == nil:
			c.Failf(p.present["torchscript"], "input.features: required to read a table: the model's feature columns, in order")
		}
	}
	if o, ok := m.Output(OutputPredictions); ok && o.ContentType != job.DefaultContentType {
		if t := strings.ToLower(strings.TrimSpace(strings.Split(o.ContentType, ";")[0])); t != "text/csv" {
			c.Add(&job.Problem{Line: o.Line, Field: "outputs.predictions.content_type", Message: fmt.Sprintf("%q: the dl engine writes predictions as text/csv", o.ContentType)})
		}
	}
}
