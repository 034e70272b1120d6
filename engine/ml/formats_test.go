package mlengine

import (
	"bytes"
	"context"
	"encoding/csv"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/dataset"
)

// bostonClasses turns the Boston CSV into a Parquet table whose label is a price band 0, 1, 2
// and which keeps a string id column (not a feature) that predict must carry through.
func bostonClasses(t *testing.T) []byte {
	raw, err := datasetInput(t, dataset.Boston).readAll(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := recs[0]
	fields := []arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}
	for _, h := range header[:len(header)-1] {
		fields = append(fields, arrow.Field{Name: h, Type: arrow.PrimitiveTypes.Float64})
	}
	fields = append(fields, arrow.Field{Name: "band", Type: arrow.PrimitiveTypes.Int64})
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, r := range recs[1:] {
		b.Field(0).(*array.StringBuilder).Append("house-" + strconv.Itoa(i))
		for j := 0; j < len(header)-1; j++ {
			v, _ := strconv.ParseFloat(r[j], 64)
			b.Field(j + 1).(*array.Float64Builder).Append(v)
		}
		medv, _ := strconv.ParseFloat(r[len(header)-1], 64)
		band := int64(0)
		if medv >= 18 {
			band = 1
		}
		if medv >= 25 {
			band = 2
		}
		b.Field(len(header)).(*array.Int64Builder).Append(band)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Multiclass XGBoost on Parquet: predictions as Parquet keep every input column (including the
// non-numeric id) and add one probability per class and the predicted class.
func TestMulticlassParquet(t *testing.T) {
	pq := bostonClasses(t)
	data := memInput(t, "boston-bands", pq, mlspec.Parquet)
	feats := []string{"crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b", "lstat"}
	res, out := mustRun(t, &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Multiclass, Label: "band", Features: feats, Rounds: 30, TestFraction: 0.2, Seed: 3,
		Params: []mlspec.Param{xgbParam("max_depth", "4")}}, map[string]Input{mlspec.InputTrain: data}, mlspec.OutputModel)
	c := res.Model.Metrics.Classification
	if res.Model.Classes != 3 || c == nil || c.Classes != 3 || c.Accuracy < 0.7 || len(c.Confusion) != 3 {
		t.Fatalf("multiclass metrics %+v", c)
	}
	t.Logf("multiclass accuracy %.3f, log-loss %.3f", c.Accuracy, c.LogLoss)
	_, pout := mustRun(t, &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: bytesInput(out[mlspec.OutputModel], ""), mlspec.InputData: data}, mlspec.OutputPredictions)
	rdr, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(pout[mlspec.OutputPredictions]), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	var names []string
	for _, f := range rdr.Schema().Fields() {
		names = append(names, f.Name)
	}
	want := append(append([]string{"id"}, feats...), "band", "probability_0", "probability_1", "probability_2", "prediction")
	if rdr.NumRows() != 506 || len(names) != len(want) {
		t.Fatalf("%d rows, columns %v", rdr.NumRows(), names)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("columns %v, want %v", names, want)
		}
	}
	// Evaluate on the same table gives a multiclass report.
	er, _ := mustRun(t, &mlspec.Params{Task: mlspec.Evaluate}, map[string]Input{mlspec.InputModel: bytesInput(out[mlspec.OutputModel], ""), mlspec.InputData: data}, mlspec.OutputReport)
	if er.Report.Metrics.Classification == nil || er.Report.Metrics.Classification.Rows != 506 {
		t.Fatalf("evaluate: %+v", er.Report.Metrics)
	}
}

// Logistic regression: binary probabilities in the predictions table, written in float64's
// shortest form.
func TestLogisticRegression(t *testing.T) {
	data := datasetInput(t, dataset.BreastCancer)
	res, out := mustRun(t, &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.LogisticRegression, Objective: mlspec.Binary, Label: "target", TestFraction: 0.2, Seed: 42,
		Params: []mlspec.Param{xgbParam("l2", "1")}}, map[string]Input{mlspec.InputTrain: data}, mlspec.OutputModel)
	if c := res.Model.Metrics.Classification; c == nil || c.Accuracy < 0.95 {
		t.Fatalf("logistic metrics %+v", c)
	}
	_, pout := mustRun(t, &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: bytesInput(out[mlspec.OutputModel], ""), mlspec.InputData: data}, mlspec.OutputPredictions)
	recs, err := csv.NewReader(bytes.NewReader(pout[mlspec.OutputPredictions])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	h := recs[0]
	if h[len(h)-2] != "probability" || h[len(h)-1] != "prediction" || len(recs) != 570 {
		t.Fatalf("header %v, %d rows", h, len(recs))
	}
}
