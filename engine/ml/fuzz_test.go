package mlengine

import (
	"slices"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
)

// FuzzDecodeModel feeds arbitrary bytes to the model decoder: it must return a model or an
// error, never panic, and a model it accepts must encode and decode again to the same model.
func FuzzDecodeModel(f *testing.F) {
	in := bytesInput([]byte("a,b,y\n1,2,0\n2,1,1\n3,3,0\n4,1,1\n5,2,0\n6,0,1\n"), mlspec.CSV)
	for _, s := range []*mlspec.Params{
		{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Binary, Label: "y", Rounds: 2},
		{Task: mlspec.Train, Algorithm: mlspec.LinearRegression, Objective: mlspec.Regression, Label: "y"},
		{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Multiclass, Label: "y", Rounds: 1},
	} {
		_, out := mustRun(f, s, map[string]Input{mlspec.InputTrain: in}, mlspec.OutputModel)
		f.Add(out[mlspec.OutputModel])
		m, err := DecodeModel(out[mlspec.OutputModel])
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(m.Inner)) // bare XGBoost / linear model
	}
	f.Add([]byte(`{"format":"ppml-model","version":1}`))
	f.Add([]byte(`{"learner":{}}`))
	f.Add([]byte("a,b\n1,2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeModel(b)
		if err != nil {
			return
		}
		if m.Bare {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted model does not encode: %v", err)
		}
		m2, err := DecodeModel(enc)
		if err != nil {
			t.Fatalf("re-encoded model does not decode: %v", err)
		}
		if m2.Algorithm != m.Algorithm || m2.Objective != m.Objective || m2.Classes != m.Classes || m2.Label != m.Label ||
			!slices.Equal(m2.Features, m.Features) || m2.TrainingJobDigest != m.TrainingJobDigest {
			t.Fatalf("round trip changed the model: %+v vs %+v", m2, m)
		}
	})
}
