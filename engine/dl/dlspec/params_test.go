package dlspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/job"
)

// parse parses a manifest with the given inputs, outputs and parameters.
// specs is the set job.Parse accepts here: the dl engine's alone.
var specs = job.NewSpecSet(Spec)

func parse(t *testing.T, inputs, outputs []string, params string) (*job.Manifest, error) {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("version: 1\nname: t\nengine: dl\ninputs:\n")
	for _, in := range inputs {
		os.WriteFile(filepath.Join(dir, in), nil, 0o600)
		b.WriteString("  " + in + ": " + in + "\n")
	}
	b.WriteString("outputs:\n")
	for _, o := range outputs {
		ct := ""
		if name, typ, ok := strings.Cut(o, "="); ok {
			o, ct = name, ", content_type: "+typ
		}
		b.WriteString("  " + o + ": {path: out-" + o + ", key: file:k" + ct + "}\n")
	}
	b.WriteString("parameters:\n" + params)
	return job.Parse([]byte(b.String()), dir, specs)
}

var (
	idxTrain = []string{"images", "labels"}
	model    = []string{"model"}
)

func TestDefaultsAreExplicit(t *testing.T) {
	m, err := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n")
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parameters.(*Params)
	if p.Optimizer != SGD || p.LearningRate != 0.05 || p.Momentum != 0.9 || p.Epochs != 3 || p.BatchSize != 128 || !p.Images {
		t.Fatalf("%+v", p)
	}
	if m.Resources.Threads != 1 {
		t.Fatalf("threads %d, want the dl default 1", m.Resources.Threads)
	}
	// Writing the defaults out is the same job.
	m2, err := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n  optimizer: sgd\n  learning_rate: 0.05\n  momentum: 0.9\n  weight_decay: 0\n  epochs: 3\n  batch_size: 128\n  seed: 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.DigestString() != m2.DigestString() {
		t.Fatal("explicit defaults changed the digest")
	}
	m3, _ := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n  seed: 1\n")
	if m3.DigestString() == m.DigestString() {
		t.Fatal("the seed is not part of the job identity")
	}
	// A step schedule is part of the job; StepLR's gamma 0.1 by default.
	s, err := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n  lr_step_epochs: 2\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Parameters.(*Params); p.LRStepEpochs != 2 || p.LRGamma != 0.1 {
		t.Fatalf("schedule: %+v", p)
	}
	s2, _ := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n  lr_step_epochs: 2\n  lr_gamma: 0.1\n")
	if s.DigestString() == m.DigestString() || s.DigestString() != s2.DigestString() {
		t.Fatal("a learning-rate schedule: not in the digest, or its default gamma changes it")
	}
	a, _ := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n  optimizer: adam\n")
	if p := a.Parameters.(*Params); p.LearningRate != 0.001 || p.Momentum != 0 {
		t.Fatalf("adam defaults: %+v", p)
	}
	tx, err := parse(t, []string{"train"}, model, "  task: train\n  model: text\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := tx.Parameters.(*Params); p.Text != "text" || p.Label != "label" || p.VocabSize != 20000 || p.TestFraction != 0.2 || p.Images {
		t.Fatalf("text defaults: %+v", p)
	}
}

// Unknown names and values, fields that do not apply: each a problem naming its field.
func TestBadParameters(t *testing.T) {
	cases := []struct {
		inputs, outputs []string
		params, want    string
	}{
		{idxTrain, model, "  task: fit\n", `task: "fit": want train, predict or evaluate`},
		{idxTrain, model, "  task: train\n", "model: required to train: lenet5, mlp or text"},
		{idxTrain, model, "  task: train\n  model: resnet50\n", `model: "resnet50": want lenet5, mlp or text`},
		{idxTrain, model, "  task: train\n  model: lenet5\n  optimizer: rmsprop\n", `optimizer: "rmsprop": want sgd or adam`},
		{idxTrain, model, "  task: train\n  model: lenet5\n  learning_rat: 0.1\n", "learning_rat: unknown field"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  learning_rate: -1\n", `learning_rate: "-1": want a number in (0, 10]`},
		{idxTrain, model, "  task: train\n  model: lenet5\n  learning_rate: nan\n", "learning_rate"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  epochs: 0\n", "epochs: 0: must be between 1 and 10000"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  batch_size: many\n", "batch_size: must be a decimal integer"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  optimizer: adam\n  momentum: 0.9\n", "momentum: only for optimizer sgd"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  lr_gamma: 0.5\n", "lr_gamma: only with lr_step_epochs"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  lr_step_epochs: 0\n", "lr_step_epochs: 0: must be between 1 and 10000"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  lr_step_epochs: 2\n  lr_gamma: 1.5\n", `lr_gamma: "1.5": want a number in (0, 1]`},
		{idxTrain, model, "  task: train\n  model: lenet5\n  hidden: [10]\n", "hidden: only for model mlp"},
		{idxTrain, model, "  task: train\n  model: mlp\n  hidden: [0]\n", "must be between 1 and 65536"},
		{idxTrain, model, "  task: train\n  model: lenet5\n  vocab_size: 10\n", "vocab_size: only for model text"},
		{idxTrain, model, "  task: train\n  model: mlp\n  label: y\n", "label: only for table data"},
		{[]string{"train"}, model, "  task: train\n  model: lenet5\n", "lenet5 reads 28 × 28 images"},
		{idxTrain, model, "  task: train\n  model: text\n", "the text classifier reads a table"},
		{[]string{"images"}, model, "  task: train\n  model: lenet5\n", `missing input "labels"`},
		{[]string{"images", "labels", "test_images"}, model, "  task: train\n  model: lenet5\n", "test_images and test_labels go together"},
		{idxTrain, []string{"weights"}, "  task: train\n  model: lenet5\n", `missing output "model"`},
		{[]string{"model", "images"}, []string{"predictions"}, "  task: predict\n  epochs: 3\n", "epochs: only for task train"},
		{[]string{"model", "images"}, []string{"predictions=application/json"}, "  task: predict\n", "writes predictions as text/csv"},
		{[]string{"model", "images"}, []string{"report"}, "  task: evaluate\n", `missing input "labels"`},
	}
	for _, c := range cases {
		_, err := parse(t, c.inputs, c.outputs, c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.params, err, c.want)
		}
	}
}

func TestCanonicalDependsOnData(t *testing.T) {
	img, err := parse(t, idxTrain, model, "  task: train\n  model: mlp\n")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parse(t, []string{"train"}, model, "  task: train\n  model: mlp\n")
	if err != nil {
		t.Fatal(err)
	}
	ci, ct := img.Parameters.Canonical(), tab.Parameters.Canonical()
	if _, ok := ci["label"]; ok {
		t.Fatalf("images: %v", ci)
	}
	if ct["label"] != "label" || ct["features"] != AllExceptLabel || ct["test_fraction"] != "0.2" {
		t.Fatalf("table: %v", ct)
	}
}

// predict and evaluate may describe a model file without ppml metadata in full
// (torchscript, dl/declared): it is in the digest, jobs without it keep theirs, and it must
// fit the data the job reads.
func TestTorchScriptDeclaration(t *testing.T) {
	table := []string{"model", "data"}
	images := []string{"model", "images", "labels"}
	const mlp = "  torchscript: {architecture: mlp, hidden: [8], input: {shape: [2], features: [a, b]}, output: {kind: logits, labels: [no, yes]}}\n"
	m, err := parse(t, table, []string{"predictions"}, "  task: predict\n"+mlp)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parameters.(*Params)
	if p.Declared == nil || p.Declared.Classes != 2 || !strings.Contains(string(m.Canonical()), `"torchscript"`) {
		t.Fatalf("%+v\n%s", p.Declared, m.Canonical())
	}
	other, err := parse(t, table, []string{"predictions"}, "  task: predict\n"+strings.Replace(mlp, "[no, yes]", "[yes, no]", 1))
	if err != nil || other.DigestString() == m.DigestString() {
		t.Fatalf("the labels are not in the digest: %v", err)
	}
	plain, err := parse(t, images, []string{"report"}, "  task: evaluate\n  model: lenet5\n")
	if err != nil || strings.Contains(string(plain.Canonical()), "torchscript") {
		t.Fatalf("a job without a declaration: %v %s", err, plain.Canonical())
	}
	if _, err := parse(t, images, []string{"report"}, "  task: evaluate\n  torchscript: {architecture: lenet5, classes: 10, input: {shape: [1, 28, 28]}}\n"); err != nil {
		t.Fatal(err)
	}
	for params, want := range map[string]string{
		"  task: predict\n  model: mlp\n" + mlp: "leave out model with torchscript",
		"  task: predict\n  torchscript: {architecture: mlp, hidden: [], classes: 2, input: {shape: [2]}}\n": "input.features: required to read a table",
		"  task: predict\n  torchscript: {architecture: lenet5}\n":                                           "classes: required",
	} {
		if _, err := parse(t, table, []string{"predictions"}, params); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", params, err, want)
		}
	}
	if _, err := parse(t, images, []string{"report"}, "  task: evaluate\n"+mlp); err == nil || !strings.Contains(err.Error(), "IDX images are read as [1, height, width]") {
		t.Errorf("a table model on images: %v", err)
	}
	if _, err := parse(t, idxTrain, model, "  task: train\n  model: lenet5\n  torchscript: {architecture: lenet5, classes: 10, input: {shape: [1, 28, 28]}}\n"); err == nil || !strings.Contains(err.Error(), "only for tasks predict and evaluate") {
		t.Errorf("train with a declaration: %v", err)
	}
}

// architecture layers declares a plain PyTorch model layer by layer: defaults (PyTorch's) are
// explicit in the digest, a final log_softmax is the output kind, and layers that do not fit
// the input, one another or the classes are refused at the layer.
func TestLayersDeclaration(t *testing.T) {
	images := []string{"model", "images", "labels"}
	decl := func(layers string) string {
		return "  task: evaluate\n  torchscript: {architecture: layers, input: {shape: [1, 28, 28]}, layers: " + layers + "}\n"
	}
	const cnn = "[{conv2d: {in: 1, out: 4, kernel: 3}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {in: 676, out: 10}}]"
	m, err := parse(t, images, []string{"report"}, decl(cnn))
	if err != nil {
		t.Fatal(err)
	}
	d := m.Parameters.(*Params).Declared
	if d.Classes != 10 || d.Output.Kind != "logits" || len(d.Layers) != 5 || d.Layers[2].Stride[0] != 2 || !d.Layers[0].Bias {
		t.Fatalf("%+v", d)
	}
	explicit, err := parse(t, images, []string{"report"}, decl("[{conv2d: {in: 1, out: 4, kernel: [3, 3], stride: 1, padding: 0, bias: true}}, relu, {max_pool2d: {kernel: 2, stride: 2}}, flatten, {linear: {in: 676, out: 10, bias: true}}]"))
	if err != nil || explicit.DigestString() != m.DigestString() {
		t.Fatalf("explicit defaults changed the digest: %v", err)
	}
	other, err := parse(t, images, []string{"report"}, decl(strings.Replace(cnn, "relu", "tanh", 1)))
	if err != nil || other.DigestString() == m.DigestString() {
		t.Fatalf("the layers are not in the digest: %v", err)
	}
	lsm, err := parse(t, images, []string{"report"}, decl(strings.TrimSuffix(cnn, "]")+", log_softmax]"))
	if err != nil || lsm.Parameters.(*Params).Declared.Output.Kind != "log_probabilities" {
		t.Fatalf("a final log_softmax: %v", err)
	}
	for layers, want := range map[string]string{
		"[flatten, {linear: {in: 700, out: 10}}]":                                             "layer 2 (linear 700→10): takes 700 values, the layer before gives 784",
		"[{linear: {in: 784, out: 10}}]":                                                      "layer 1 (linear 784→10): needs a flat input, it gets [1 28 28] (add flatten before it)",
		"[{conv2d: {in: 3, out: 4, kernel: 3}}, flatten, {linear: {in: 2704, out: 10}}]":      "takes 3 channels, the layer before gives 1",
		"[flatten, {linear: {in: 784, out: 1}}]":                                              "classes",
		"[flatten, {linear: {in: 784, out: 10}}, {linear: {in: 10, out: 10}}, softmax, relu]": "softmax only as the last layer",
		"[flatten, {lstm: {in: 784}}]":                                                        `"lstm": want one of linear, conv2d`,
		"[{conv2d: {in: 1, out: 4}}, flatten]":                                                "conv2d needs kernel",
		"[{max_pool2d: {kernel: 40}}, flatten, {linear: {in: 1, out: 10}}]":                   "kernel [40 40] is larger than its padded input",
		"[{relu: {in: 3}}]": "relu takes no fields",
		"[flatten, {linear: {in: 784, out: 10, module: 'a..b'}}]": "not a dotted module name",
	} {
		if _, err := parse(t, images, []string{"report"}, decl(layers)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", layers, err, want)
		}
	}
	if _, err := parse(t, images, []string{"report"}, "  task: evaluate\n  torchscript: {architecture: layers, input: {shape: [1, 28, 28]}, output: {kind: logits}, layers: [flatten, {linear: {in: 784, out: 10}}, log_softmax]}\n"); err == nil || !strings.Contains(err.Error(), "output.kind logits, but the layers end with log_softmax") {
		t.Errorf("output.kind against a final log_softmax: %v", err)
	}
	if _, err := parse(t, images, []string{"report"}, "  task: evaluate\n  torchscript: {architecture: mlp, hidden: [], classes: 10, input: {shape: [1, 28, 28]}, layers: [relu]}\n"); err == nil || !strings.Contains(err.Error(), "only for architecture layers") {
		t.Errorf("layers for mlp: %v", err)
	}
}
