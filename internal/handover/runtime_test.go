package handover_test

import (
	"testing"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/internal/handover"
	"github.com/ppml/ppml/job"
)

// `ppml run` picks ppml-run-dl for every job on libtorch — a dl job, a serve job that
// declares a TorchScript model or names its backend torchscript — and ppml-run for the others, from the manifest alone.
func TestRuntimeFor(t *testing.T) {
	for body, want := range map[string]string{
		"engine: dl\ninputs: {model: /m/m.pt, images: /m/i, labels: /m/l}\noutputs: {report: {path: /m/r, key: 'file:/m/k'}}\nparameters: {task: evaluate, model: lenet5}\n": handover.RuntimeDL,
		"engine: serve\ninputs: {m: /m/m.pt}\nparameters: {models: [{name: m, input: m, torchscript: {architecture: lenet5, classes: 10, input: {shape: [1, 28, 28]}}}]}\n":  handover.RuntimeDL,
		"engine: serve\ninputs: {m: /m/m.json}\nparameters: {models: [{name: m, input: m}]}\n":                                                                               handover.Runtime,
		"engine: serve\ninputs: {m: /m/m.pt, x: /m/x.json}\nparameters: {models: [{name: x, input: x}, {name: m, input: m, backend: torchscript}]}\n":                        handover.RuntimeDL,
		"engine: serve\ninputs: {m: /m/m.json}\nparameters: {models: [{name: m, input: m, backend: tabular}]}\n":                                                             handover.Runtime,
		"engine: sql\ninputs: {t: /m/t.csv}\noutputs: {out: {path: /m/o.csv, key: 'file:/m/k'}}\nparameters: {query: select 1}\n":                                            handover.Runtime,
	} {
		m, err := job.Parse([]byte("version: 1\nname: t\n"+body), "/", specs.All)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got := handover.RuntimeFor(m); got != want {
			t.Errorf("%s: %s, want %s", body, got, want)
		}
	}
}
