package mlengine

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/memfd/memfdtest"
	"github.com/ppml/ppml/ml/dataset"
)

// memInput puts data into a sealed memfd, as the launcher does after decrypting, and returns
// it as an input by /proc/self/fd path.
func memInput(t testing.TB, name string, data []byte, f mlspec.Format) Input {
	t.Helper()
	return Input{Path: memfdtest.Sealed(t, name, data).Path(), Format: f}
}

func datasetInput(t testing.TB, name string) Input {
	t.Helper()
	b, err := os.ReadFile(dataset.Require(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return memInput(t, name, b, mlspec.CSV)
}

func bytesInput(b []byte, f mlspec.Format) Input {
	return Input{ReaderAt: bytes.NewReader(b), Size: int64(len(b)), Format: f}
}

// run runs a job and returns its outputs (named as requested).
func run(t testing.TB, spec *mlspec.Params, inputs map[string]Input, outNames ...string) (*Result, map[string][]byte, error) {
	t.Helper()
	bufs := map[string]*bytes.Buffer{}
	outs := map[string]Output{}
	for _, n := range outNames {
		bufs[n] = &bytes.Buffer{}
		outs[n] = Output{W: bufs[n]}
	}
	res, err := Run(context.Background(), Config{Threads: 1, JobDigest: "sha256:" + string(bytes.Repeat([]byte("ab"), 32))}, spec, inputs, outs)
	got := map[string][]byte{}
	for n, b := range bufs {
		got[n] = b.Bytes()
	}
	return res, got, err
}

func mustRun(t testing.TB, spec *mlspec.Params, inputs map[string]Input, outNames ...string) (*Result, map[string][]byte) {
	t.Helper()
	res, out, err := run(t, spec, inputs, outNames...)
	if err != nil {
		t.Fatalf("%s %s: %v", spec.Task, spec.Algorithm, err)
	}
	return res, out
}

func xgbParam(n, v string) mlspec.Param { return mlspec.Param{Name: n, Value: v} }
