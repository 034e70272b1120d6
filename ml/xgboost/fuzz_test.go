package xgboost

import (
	"encoding/json"
	"errors"
	"math"
	"sort"
	"testing"
)

// seedModels trains small models of each supported shape.
func seedModels(f *testing.F) [][]byte {
	x := make([]float32, 60*3)
	y := make([]float32, 60)
	for i := range y {
		x[3*i], x[3*i+1], x[3*i+2] = float32(i%10)/10, float32(i%7), float32(math.NaN())
		if i%3 == 0 {
			x[3*i+2] = 1
		}
		y[i] = float32(i % 3)
	}
	d, err := NewDMatrix(x, 60, 3, 1)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		f.Fatal(err)
	}
	var models [][]byte
	for _, params := range [][]Param{
		{{"objective", "reg:squarederror"}, {"max_depth", "2"}},
		{{"objective", "multi:softprob"}, {"num_class", "3"}, {"max_depth", "2"}},
		{{"objective", "reg:squarederror"}, {"num_parallel_tree", "2"}, {"max_depth", "1"}},
		{{"objective", "binary:logistic"}, {"max_depth", "2"}},
	} {
		if params[0].Value == "binary:logistic" {
			if err := d.SetLabels(func() []float32 {
				b := make([]float32, len(y))
				for i := range y {
					b[i] = float32(i % 2)
				}
				return b
			}()); err != nil {
				f.Fatal(err)
			}
		}
		b, err := Train(d, Config{Params: params, Rounds: 2, NThread: 1})
		if err != nil {
			f.Fatal(err)
		}
		m, err := b.SaveJSON()
		b.Close()
		if err != nil {
			f.Fatal(err)
		}
		models = append(models, m)
	}
	return models
}

// exercise predicts with an accepted model; any crash in XGBoost fails the fuzzer.
func exercise(t *testing.T, b *Booster) {
	nf, err := b.NumFeatures()
	if err != nil || nf < 1 || nf > 64 {
		return
	}
	q := make([]float32, 2*nf)
	for i := range q {
		q[i] = float32(i) - 1
	}
	q[0] = float32(math.NaN())
	dm, err := NewDMatrix(q, 2, nf, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	want, err := b.Predict(dm)
	b.SaveJSON()
	// The Go evaluator, where it takes the model, must agree with XGBoost to the bit.
	e, err2 := NewEvaluator(b)
	if errors.Is(err2, ErrMismatch) {
		t.Fatal(err2)
	}
	if err != nil || err2 != nil {
		return
	}
	got, err := e.Predict(q, 2, nf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Values {
		if math.Float32bits(got.Values[i]) != math.Float32bits(want.Values[i]) {
			t.Fatalf("value %d: evaluator %v, XGBoost %v", i, got.Values[i], want.Values[i])
		}
	}
}

// leaves lists pointers to every scalar in a decoded JSON document, in a fixed order.
func leaves(v any, set func(any), out *[]func(any)) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			leaves(v[k], func(n any) { v[k] = n }, out)
		}
	case []any:
		for i := range v {
			leaves(v[i], func(n any) { v[i] = n }, out)
		}
	default:
		*out = append(*out, set)
	}
}

// FuzzLoadJSONFields replaces one scalar of a real model with a fuzzed JSON value, so that
// well-formed but hostile models get past JSON parsing and reach the validation and XGBoost.
func FuzzLoadJSONFields(f *testing.F) {
	models := seedModels(f)
	f.Add(uint8(0), uint16(10), []byte(`-1`))
	f.Add(uint8(1), uint16(200), []byte(`"7"`))
	f.Add(uint8(2), uint16(50), []byte(`1e38`))
	f.Add(uint8(3), uint16(5), []byte(`"nan"`))
	f.Add(uint8(1), uint16(3), []byte(`[]`))
	f.Fuzz(func(t *testing.T, which uint8, field uint16, value []byte) {
		var repl any
		if err := json.Unmarshal(value, &repl); err != nil {
			return
		}
		if _, ok := repl.(float64); ok {
			repl = json.Number(string(value)) // keep the literal, as the loader does
		}
		doc, err := decodeJSON(models[int(which)%len(models)])
		if err != nil {
			t.Fatal(err)
		}
		var sets []func(any)
		leaves(doc, nil, &sets)
		sets[int(field)%len(sets)](repl)
		model, err := json.Marshal(doc)
		if err != nil {
			return
		}
		if canon, _, err := ValidateModelJSON(model); err == nil {
			CompileJSON(canon) // hostile but valid models must not crash the compiler
		}
		b, err := LoadJSON(model, 1)
		if err != nil {
			return
		}
		defer b.Close()
		exercise(t, b)
	})
}

// FuzzLoadJSON feeds untrusted bytes to LoadJSON. Anything it accepts must then predict without
// crashing (a crash inside XGBoost kills the fuzzing process, which the fuzzer reports).
func FuzzLoadJSON(f *testing.F) {
	for _, m := range seedModels(f) {
		f.Add(m)
	}
	f.Add([]byte(`{"learner":{},"version":[1,7,4]}`))
	f.Add([]byte("binf\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, model []byte) {
		b, err := LoadJSON(model, 1)
		if err != nil {
			return
		}
		defer b.Close()
		exercise(t, b)
	})
}
