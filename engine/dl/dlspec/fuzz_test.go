package dlspec

import (
	"testing"

	"github.com/ppml/ppml/job"
)

// FuzzDLParameters parses whole manifests of the dl engine: any bytes give a manifest whose
// parameters have a canonical form and a digest, or an error; never a panic.
func FuzzDLParameters(f *testing.F) {
	for _, p := range []string{
		"  task: train\n  model: lenet5\n  optimizer: adam\n  learning_rate: 0.003\n  epochs: 3\n  seed: 42\n",
		"  task: train\n  model: lenet5\n  optimizer: adam\n  learning_rate: 0.003\n  lr_step_epochs: 2\n  lr_gamma: 0.3\n  epochs: 3\n",
		"  task: train\n  model: mlp\n  hidden: [64, 32]\n  features: [a, b]\n  label: y\n  test_fraction: 0.25\n",
		"  task: train\n  model: text\n  vocab_size: 100\n  max_tokens: 16\n  text: body\n",
		"  task: evaluate\n  model: lenet5\n  batch_size: 64\n",
		"  task: predict\n",
		"  task: evaluate\n  torchscript: {architecture: lenet5, classes: 10, input: {datatype: UINT8, shape: [1, 28, 28]}, output: {kind: logits, labels: [a, b, c, d, e, f, g, h, i, j]}}\n",
		"  task: predict\n  torchscript: {architecture: mlp, hidden: [8], input: {shape: [2], features: [a, b]}, output: {name: y, labels: [no, yes]}}\n",
	} {
		f.Add([]byte("version: 1\nname: f\nengine: dl\ninputs:\n  images: /x/i\n  labels: /x/l\noutputs:\n  model: {path: /x/m, key: file:/x/k}\nparameters:\n" + p))
		f.Add([]byte("version: 1\nname: f\nengine: dl\ninputs:\n  train: /x/t\noutputs:\n  model: {path: /x/m, key: file:/x/k}\nparameters:\n" + p))
	}
	specs := job.NewSpecSet(Spec)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := job.Parse(b, "/", specs)
		if err != nil {
			return
		}
		if p, ok := m.Parameters.(*Params); ok {
			p.Canonical()
			m.DigestString()
		}
	})
}
