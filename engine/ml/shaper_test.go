package mlengine

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/dataset"
)

// keepColumns stands in for the SQL engine at the seam: it checks it got the job's query and
// inputs and returns the named input with only some columns (what "SELECT rm, lstat, medv FROM
// houses" would give).
type keepColumns struct {
	query string
	cols  []string
}

func (k keepColumns) Shape(_ context.Context, query string, inputs map[string]Input) (Input, error) {
	if query != k.query {
		return Input{}, errors.New("wrong query")
	}
	raw, err := inputs["houses"].readAll(1 << 20)
	if err != nil {
		return Input{}, err
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		return Input{}, err
	}
	idx := map[string]int{}
	for j, h := range recs[0] {
		idx[h] = j
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, r := range recs {
		var out []string
		for _, c := range k.cols {
			out = append(out, r[idx[c]])
		}
		w.Write(out)
	}
	w.Flush()
	return bytesInput(buf.Bytes(), mlspec.CSV), nil
}

func TestQueryShapesTrainingTable(t *testing.T) {
	q := "SELECT rm, lstat, medv FROM houses"
	spec := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.LinearRegression, Objective: mlspec.Regression, Label: "medv", TestFraction: 0.2, Seed: 42, Query: q}
	var model bytes.Buffer
	res, err := Run(context.Background(), Config{SQL: keepColumns{query: q, cols: []string{"rm", "lstat", "medv"}}}, spec,
		map[string]Input{"houses": datasetInput(t, dataset.Boston)}, map[string]Output{mlspec.OutputModel: {W: &model}})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Model.Features; len(f) != 2 || f[0] != "rm" || f[1] != "lstat" || res.Rows != 405 {
		t.Fatalf("trained on %v, %d rows", f, res.Rows)
	}
}
