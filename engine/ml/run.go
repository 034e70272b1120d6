package mlengine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/internal/usage"
	"github.com/ppml/ppml/ml/linear"
	"github.com/ppml/ppml/ml/metrics"
	"github.com/ppml/ppml/ml/split"
	"github.com/ppml/ppml/ml/table"
	"github.com/ppml/ppml/ml/xgboost"
)

// Input is one input of a job: a file by path (the launcher passes /proc/self/fd/N of a memfd
// holding the decrypted plaintext) or an io.ReaderAt of Size bytes. Format applies to tables;
// a model input ignores it.
type Input struct {
	Path     string
	ReaderAt io.ReaderAt
	Size     int64
	Format   mlspec.Format
	// Name names the input in messages (a file of a directory input); may be empty.
	Name string
	// Parts, when set, are the files of a table split into several (a directory input of a
	// train job, or a worker's block of one): the table is their rows in order, each file
	// with its own header row and the same columns. Path and ReaderAt are then unused.
	Parts []Input
}

// Output is one output of a job. Format applies to the predictions table ("" means the format
// of the data input); the model and the report are JSON.
type Output struct {
	W      io.Writer
	Format mlspec.Format
}

// Shaper runs a train job's query: the seam through which the launcher hands the SQL engine to
// this one (this package does not import engine/sql). Shape runs the SQL statement over the
// job's inputs (each a table named after its input) and returns the result as a table.
type Shaper interface {
	Shape(ctx context.Context, query string, inputs map[string]Input) (Input, error)
}

// Config is what the caller supplies besides the job.
type Config struct {
	// Threads for XGBoost (≤ 0 means 1: OpenMP stalls on small machines with more).
	Threads int
	// JobDigest ("sha256:<hex>") of the training job, recorded in the model.
	JobDigest string
	// SQL runs mlspec.Params.Query; a job with a query fails without it.
	SQL Shaper
	// Worker, for a worker of a distributed train job (mlspec.Params.Workers > 1), trains
	// together with the other workers through XGBoost's collective: the training input
	// holds this worker's rows only, and every worker builds the same model. Only worker 0
	// writes outputs; the others are given none.
	Worker *Worker
}

// Worker is one worker of a distributed train job.
type Worker struct {
	Rank, Workers int
	// Join is called once this worker's training table was read and checked, just before
	// training (a worker with a bad table fails alone, before the others wait on it): it
	// joins the other workers and returns this worker's collective configuration.
	Join func(ctx context.Context) (*xgboost.Collective, error)
}

// TrainError is a failure of the training itself (XGBoost's, or a linear fit's): on a
// worker of a distributed job, possibly another worker's failure seen through the
// collective.
type TrainError struct{ Err error }

func (e *TrainError) Error() string { return "ml job: train: " + e.Err.Error() }
func (e *TrainError) Unwrap() error { return e.Err }

// Result describes a finished job, for printing.
type Result struct {
	Task   mlspec.Task
	Model  *Model  // trained (train) or applied (predict, evaluate); Inner is the model JSON
	Report *Report // train and evaluate
	Rows   int     // rows trained on, predicted or evaluated
	// Preview holds the rows to show as a features | label | prediction table: the test rows
	// after train, the input rows after predict and evaluate. Label is nil after predict.
	Preview *Preview
	// TrainTime and TrainCPU measure XGBoost's or the linear fit's training call alone.
	TrainTime time.Duration
	TrainCPU  time.Duration
}

// Preview is a features | label | prediction sample.
type Preview struct {
	X     *table.Table
	Label []float64
	Pred  []float64
}

// Show writes the first n preview rows in the Spark DataFrame.show() style.
func (r *Result) Show(w io.Writer, n int) error {
	if r.Preview == nil {
		return nil
	}
	return table.ShowPredictions(w, r.Preview.X, r.Preview.Label, r.Preview.Pred, n)
}

// Report is the JSON a train job writes to its report output and an evaluate job writes to its
// report output.
type Report struct {
	Task              mlspec.Task      `json:"task"`
	Algorithm         mlspec.Algorithm `json:"algorithm"`
	Objective         mlspec.Objective `json:"objective"`
	Classes           int              `json:"classes,omitempty"`
	Features          []string         `json:"features"`
	Label             string           `json:"label"`
	TrainingJobDigest string           `json:"training_job_digest,omitempty"`
	Metrics           *Metrics         `json:"metrics,omitempty"`
}

// Run runs one ml job. Nothing is written to any output unless the whole job succeeds, so a
// failed job leaves its outputs empty (the launcher then discards them).
func Run(ctx context.Context, cfg Config, spec *mlspec.Params, inputs map[string]Input, outputs map[string]Output) (*Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if cfg.Threads <= 0 {
		cfg.Threads = 1
	}
	if cfg.JobDigest != "" && !digestRE.MatchString(cfg.JobDigest) {
		return nil, fmt.Errorf("ml job: job digest %q is not sha256:<64 hex digits>", clip(cfg.JobDigest))
	}
	if err := checkCollective(cfg, spec, outputs); err != nil {
		return nil, err
	}
	if cfg.Worker == nil || cfg.Worker.Rank == 0 {
		if err := checkOutputs(spec, outputs); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch spec.Task {
	case mlspec.Train:
		return runTrain(ctx, cfg, spec, inputs, outputs)
	default:
		if err := mlspec.CheckNameSet(inputs, []string{mlspec.InputModel, mlspec.InputData}, []string{mlspec.InputModel, mlspec.InputData}, "input"); err != nil {
			return nil, err
		}
		return runApply(cfg, spec, inputs, outputs)
	}
}

// checkCollective checks that a distributed job runs with a collective and
// only its worker 0 writes.
func checkCollective(cfg Config, spec *mlspec.Params, outputs map[string]Output) error {
	w := cfg.Worker
	switch {
	case w == nil && spec.Distributed():
		return fmt.Errorf("ml job: the job trains on %d workers: it runs under ppml-run run with this worker's place (--worker-index, --peers)", spec.Workers)
	case w == nil:
		return nil
	case !spec.Distributed():
		return errors.New("ml job: a worker's place was given for a job on one worker")
	case w.Workers != spec.Workers || w.Rank < 0 || w.Rank >= w.Workers || w.Join == nil:
		return fmt.Errorf("ml job: worker %d of %d, for a job on %d workers", w.Rank, w.Workers, spec.Workers)
	case w.Rank != 0 && len(outputs) > 0:
		return fmt.Errorf("ml job: worker %d writes no outputs (worker 0 writes the model)", w.Rank)
	}
	return nil
}

func checkOutputs(spec *mlspec.Params, outputs map[string]Output) error {
	req, opt := spec.OutputNames()
	for name, o := range outputs {
		if o.W == nil {
			return fmt.Errorf("ml job: output %q has no writer", name)
		}
	}
	return mlspec.CheckNameSet(outputs, req, append(req, opt...), "output")
}

func (in Input) open() (io.ReaderAt, int64, func(), error) {
	if in.Path != "" {
		f, err := os.Open(in.Path)
		if err != nil {
			return nil, 0, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, err
		}
		return f, fi.Size(), func() { f.Close() }, nil
	}
	if in.ReaderAt == nil {
		return nil, 0, nil, errors.New("input has neither a path nor a reader")
	}
	return in.ReaderAt, in.Size, func() {}, nil
}

func (in Input) readAll(limit int64) ([]byte, error) {
	ra, size, done, err := in.open()
	if err != nil {
		return nil, err
	}
	defer done()
	if size > limit {
		return nil, fmt.Errorf("%d bytes is more than the limit of %d", size, limit)
	}
	return io.ReadAll(io.NewSectionReader(ra, 0, size))
}

func readDataset(in Input, sel table.Selection) (*table.Dataset, error) {
	if len(in.Parts) > 0 {
		parts := make([]*table.Dataset, len(in.Parts))
		for i, p := range in.Parts {
			d, err := readDataset(p, sel)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", cmpOr(p.Name, fmt.Sprintf("part %d", i+1)), err)
			}
			parts[i] = d
		}
		return table.Concat(parts)
	}
	ra, size, done, err := in.open()
	if err != nil {
		return nil, err
	}
	defer done()
	sr := io.NewSectionReader(ra, 0, size)
	switch in.Format {
	case mlspec.CSV:
		return table.ReadCSV(sr, sel)
	case mlspec.Parquet:
		return table.ReadParquet(sr, sel)
	}
	return nil, fmt.Errorf("table format %q: want csv or parquet", in.Format)
}

func runTrain(ctx context.Context, cfg Config, spec *mlspec.Params, inputs map[string]Input, outputs map[string]Output) (*Result, error) {
	var data Input
	if spec.Query != "" {
		if cfg.SQL == nil {
			return nil, errors.New("ml job: the job has a query but no SQL engine was provided to run it")
		}
		shaped, err := cfg.SQL.Shape(ctx, spec.Query, inputs)
		if err != nil {
			return nil, fmt.Errorf("ml job: query: %w", err)
		}
		data = shaped
	} else {
		tr, okT := inputs[mlspec.InputTrain]
		da, okD := inputs[mlspec.InputData]
		if okT == okD || len(inputs) != 1 {
			return nil, errors.New("ml job: a train job reads exactly one input, named train (or data)")
		}
		data = tr
		if okD {
			data = da
		}
	}
	d, err := readDataset(data, table.Selection{Features: spec.Features, Label: spec.Label})
	if err != nil {
		return nil, fmt.Errorf("ml job: training table: %w", err)
	}
	classes, err := checkLabels(d, spec.Objective)
	if err != nil {
		return nil, fmt.Errorf("ml job: %w", err)
	}
	if w := cfg.Worker; w != nil && spec.Partition == mlspec.PartitionRows {
		// Every worker read the whole table; it trains on its block of rows.
		lo, hi, err := mlspec.WorkerRows(d.X.NumRows(), w.Rank, w.Workers)
		if err != nil {
			return nil, fmt.Errorf("ml job: partition rows: %w", err)
		}
		d = d.Split(rowRange(lo, hi))
	}
	if cfg.Worker != nil && spec.Objective == mlspec.Multiclass {
		// The workers agree on params.num_class (required): none sees the others' labels.
		if classes, err = numClass(spec, classes); err != nil {
			return nil, err
		}
	}
	train, test := d, (*table.Dataset)(nil)
	if spec.TestFraction > 0 {
		tri, tei, err := split.TrainTest(d.X.NumRows(), spec.TestFraction, spec.Seed)
		if err != nil {
			if cfg.Worker != nil {
				// Each worker holds out test_fraction of its own rows.
				return nil, fmt.Errorf("ml job: worker %d's rows: %w", cfg.Worker.Rank, err)
			}
			return nil, fmt.Errorf("ml job: %w", err)
		}
		train, test = d.Split(tri), d.Split(tei)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &Model{Format: ModelFormat, Version: ModelVersion, Algorithm: spec.Algorithm, Objective: spec.Objective,
		Features: d.X.Names, Label: d.Label, TrainingJobDigest: cfg.JobDigest}
	if spec.Objective == mlspec.Multiclass {
		m.Classes = classes
	}
	res := &Result{Task: mlspec.Train, Model: m, Rows: train.X.NumRows()}
	var coll *xgboost.Collective
	if cfg.Worker != nil {
		if coll, err = cfg.Worker.Join(ctx); err != nil {
			return nil, err
		}
	}
	var p predictor
	var held *heldOut
	switch spec.Algorithm {
	case mlspec.XGBoost, mlspec.RandomForest:
		if coll != nil && test != nil {
			// The workers' held-out rows are scored together, while
			// the collective is still up.
			coll.Finish = func(b *xgboost.Booster) (err error) {
				xp := &xgbPredictor{b: b, threads: cfg.Threads, obj: spec.Objective, classes: classes}
				held, err = gatherHeldOut(b, cfg.Worker, xp, test, train.X.NumRows())
				return err
			}
		}
		xp, err := trainXGBoost(cfg, spec, train, classes, coll, res)
		if err != nil {
			return nil, err
		}
		defer xp.b.Close()
		p = xp
		if m.Inner, err = xp.b.SaveJSON(); err != nil {
			return nil, fmt.Errorf("ml job: save model: %w", err)
		}
		_, info, err := xgboost.ValidateModelJSON(m.Inner)
		if err != nil {
			return nil, fmt.Errorf("ml job: saved model: %w", err)
		}
		if got, _ := objectiveOf(info.Objective); got != spec.Objective {
			return nil, fmt.Errorf("ml job: params.objective %q does not fit objective %s", info.Objective, spec.Objective)
		}
	default:
		lm, err := trainLinear(spec, train, res)
		if err != nil {
			return nil, err
		}
		lm.TrainingJobDigest = cfg.JobDigest
		p = linearPredictor{lm}
		if m.Inner, err = lm.Encode(); err != nil {
			return nil, fmt.Errorf("ml job: save model: %w", err)
		}
	}
	if test != nil {
		y, trainRows := test.Y, train.X.NumRows()
		var pred, all *predictions
		if held != nil {
			// A distributed job: the metrics are those of every worker's
			// held-out rows, in worker order.
			pred, all, y, trainRows = held.own, held.pred, held.y, held.trainRows
		} else {
			if pred, err = p.predict(test.X); err != nil {
				return nil, fmt.Errorf("ml job: predict test rows: %w", err)
			}
			all = pred
		}
		mt, err := score(y, all, m)
		if err != nil {
			return nil, fmt.Errorf("ml job: test metrics: %w", err)
		}
		mt.TrainRows, mt.TestFraction, mt.Seed = trainRows, spec.TestFraction, spec.Seed
		m.Metrics = mt
		if lp, ok := p.(linearPredictor); ok {
			// The linear format records metrics too, so a bare linear model keeps them.
			lp.m.Metrics = flatMetrics(mt)
			if m.Inner, err = lp.m.Encode(); err != nil {
				return nil, fmt.Errorf("ml job: save model: %w", err)
			}
		}
		res.Preview = &Preview{X: test.X, Label: test.Y, Pred: pred.class()}
	}
	modelJSON, err := m.Encode()
	if err != nil {
		return nil, fmt.Errorf("ml job: %w", err)
	}
	res.Report = reportOf(mlspec.Train, m, m.Metrics)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Worker != nil && cfg.Worker.Rank != 0 {
		return res, nil // worker 0 writes the model every worker built
	}
	if _, err := outputs[mlspec.OutputModel].W.Write(modelJSON); err != nil {
		return nil, fmt.Errorf("ml job: write model: %w", err)
	}
	if o, ok := outputs[mlspec.OutputReport]; ok {
		if err := writeReport(o.W, res.Report); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func flatMetrics(mt *Metrics) map[string]float64 {
	out := map[string]float64{}
	if r := mt.Regression; r != nil {
		out["rmse"], out["mae"], out["r2"] = r.RMSE, r.MAE, r.R2
	}
	if c := mt.Classification; c != nil {
		out["accuracy"], out["log_loss"] = c.Accuracy, c.LogLoss
		if c.AUC != nil {
			out["auc"] = *c.AUC
		}
	}
	return out
}

func reportOf(t mlspec.Task, m *Model, mt *Metrics) *Report {
	return &Report{Task: t, Algorithm: m.Algorithm, Objective: m.Objective, Classes: m.Classes,
		Features: m.Features, Label: m.Label, TrainingJobDigest: m.TrainingJobDigest, Metrics: mt}
}

func writeReport(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("ml job: report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("ml job: write report: %w", err)
	}
	return nil
}

// maxClasses bounds multiclass labels (XGBoost keeps per-class trees).
const maxClasses = 1000

// checkLabels checks that classification labels are class indices and returns the number of
// classes (2 for binary, 0 for regression). Errors name the row, never the value.
func checkLabels(d *table.Dataset, obj mlspec.Objective) (int, error) {
	switch obj {
	case mlspec.Binary:
		for i, v := range d.Y {
			if v != 0 && v != 1 {
				return 0, fmt.Errorf("label column %q, row %d: binary classification needs labels 0 or 1", d.Label, i+1)
			}
		}
		return 2, nil
	case mlspec.Multiclass:
		k := 0
		for i, v := range d.Y {
			if v != math.Trunc(v) || v < 0 || v >= maxClasses {
				return 0, fmt.Errorf("label column %q, row %d: multiclass classification needs class indices 0, 1, … below %d", d.Label, i+1, maxClasses)
			}
			k = max(k, int(v)+1)
		}
		if k < 2 {
			return 0, fmt.Errorf("label column %q: multiclass classification needs at least two classes", d.Label)
		}
		return k, nil
	}
	return 0, nil
}

func xgbObjective(o mlspec.Objective) string {
	switch o {
	case mlspec.Binary:
		return "binary:logistic"
	case mlspec.Multiclass:
		return "multi:softprob"
	}
	return "reg:squarederror"
}

func trainXGBoost(cfg Config, spec *mlspec.Params, train *table.Dataset, classes int, coll *xgboost.Collective, res *Result) (*xgbPredictor, error) {
	dm, err := xgboost.NewDMatrixFromDataset(train, cfg.Threads)
	if err != nil {
		return nil, fmt.Errorf("ml job: %w", err)
	}
	defer dm.Close()
	head := []xgboost.Param{}
	if spec.Objective == mlspec.Multiclass && !slices.ContainsFunc(spec.Params, func(p mlspec.Param) bool { return p.Name == "num_class" }) {
		head = append(head, xgboost.Param{Name: "num_class", Value: strconv.Itoa(classes)})
	}
	var xc xgboost.Config
	if spec.Algorithm == mlspec.RandomForest {
		extra := append(head, xgbParams(spec.Params)...)
		xc, err = xgboost.Forest{Trees: mlspec.DefaultForestTrees}.Config(xgbObjective(spec.Objective), cfg.Threads, extra...)
		if err != nil {
			return nil, fmt.Errorf("ml job: %w", err)
		}
	} else {
		params := append([]xgboost.Param{{Name: "objective", Value: xgbObjective(spec.Objective)}}, head...)
		xc = xgboost.Config{Params: append(params, xgbParams(spec.Params)...), Rounds: spec.Rounds, NThread: cfg.Threads}
	}
	xc.Collective = coll
	t0, c0 := time.Now(), usage.CPUTime()
	b, err := xgboost.Train(dm, xc)
	res.TrainTime, res.TrainCPU = time.Since(t0), usage.CPUTime()-c0
	if err != nil {
		return nil, &TrainError{err}
	}
	return &xgbPredictor{b: b, threads: cfg.Threads, obj: spec.Objective, classes: classes}, nil
}

// numClass is a distributed multiclass job's params.num_class, which every label of this
// worker's rows must be below (seen is the number of classes its own labels show).
func numClass(spec *mlspec.Params, seen int) (int, error) {
	for _, p := range spec.Params {
		if p.Name != "num_class" {
			continue
		}
		k, err := strconv.Atoi(p.Value)
		if err != nil || k < 2 || k > maxClasses {
			return 0, fmt.Errorf("ml job: params.num_class %q: want a whole number from 2 to %d", clip(p.Value), maxClasses)
		}
		if seen > k {
			return 0, fmt.Errorf("ml job: a label of this worker's rows is class %d, beyond params.num_class %d", seen-1, k)
		}
		return k, nil
	}
	return 0, errors.New("ml job: multiclass on several workers needs params.num_class")
}

// xgbParams hands the job's parameters to XGBoost, which checks their names and values.
func xgbParams(ps []mlspec.Param) []xgboost.Param {
	out := make([]xgboost.Param, len(ps))
	for i, p := range ps {
		out[i] = xgboost.Param{Name: p.Name, Value: p.Value}
	}
	return out
}

func trainLinear(spec *mlspec.Params, train *table.Dataset, res *Result) (*linear.Model, error) {
	var opt linear.LogisticOptions
	for _, p := range spec.Params {
		v, err := strconv.ParseFloat(p.Value, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("ml job: params.%s %q: want a non-negative number", p.Name, clip(p.Value))
		}
		switch p.Name {
		case "l2":
			opt.L2 = v
		case "max_iterations":
			if v != math.Trunc(v) || v > 1e7 {
				return nil, fmt.Errorf("ml job: params.max_iterations %q: want a whole number", clip(p.Value))
			}
			opt.MaxIterations = int(v)
		}
	}
	t0, c0 := time.Now(), usage.CPUTime()
	var lm *linear.Model
	var err error
	if spec.Algorithm == mlspec.LinearRegression {
		lm, err = linear.FitLinear(train)
	} else {
		lm, err = linear.FitLogistic(train, opt)
	}
	res.TrainTime, res.TrainCPU = time.Since(t0), usage.CPUTime()-c0
	if err != nil {
		return nil, fmt.Errorf("ml job: train: %w", err)
	}
	return lm, nil
}

// predictions are a model's outputs for some rows: one value per row (regression value or
// probability of class 1), or Classes probabilities per row (multiclass). Bits is 32 for
// XGBoost's float32 outputs (written with float32's shortest form), 64 for linear models.
type predictions struct {
	obj     mlspec.Objective
	classes int
	values  []float64
	bits    int
}

// class returns the predicted value per row: the regression value or the predicted class.
func (p *predictions) class() []float64 {
	switch p.obj {
	case mlspec.Binary:
		out := make([]float64, len(p.values))
		for i, v := range p.values {
			if v >= 0.5 {
				out[i] = 1
			}
		}
		return out
	case mlspec.Multiclass:
		n := len(p.values) / p.classes
		out := make([]float64, n)
		for i := range n {
			best := 0
			for c := 1; c < p.classes; c++ {
				if p.values[i*p.classes+c] > p.values[i*p.classes+best] {
					best = c
				}
			}
			out[i] = float64(best)
		}
		return out
	}
	return p.values
}

type predictor interface {
	predict(x *table.Table) (*predictions, error)
}

type xgbPredictor struct {
	b       *xgboost.Booster
	threads int
	obj     mlspec.Objective
	classes int
}

func (x *xgbPredictor) predict(t *table.Table) (*predictions, error) {
	pr, err := x.b.PredictTable(t, x.threads)
	if err != nil {
		return nil, err
	}
	want := t.NumRows()
	if x.obj == mlspec.Multiclass {
		want *= x.classes
	}
	if len(pr.Values) != want {
		return nil, fmt.Errorf("xgboost returned %d values for %d rows (shape %v)", len(pr.Values), t.NumRows(), pr.Shape)
	}
	out := &predictions{obj: x.obj, classes: x.classes, bits: 32, values: make([]float64, len(pr.Values))}
	for i, v := range pr.Values {
		out.values[i] = float64(v)
	}
	return out, nil
}

type linearPredictor struct{ m *linear.Model }

func (l linearPredictor) predict(t *table.Table) (*predictions, error) {
	v, err := l.m.Predict(t)
	if err != nil {
		return nil, err
	}
	obj := mlspec.Regression
	if l.m.Kind == linear.LogisticRegression {
		obj = mlspec.Binary
	}
	return &predictions{obj: obj, values: v, bits: 64}, nil
}

func score(y []float64, p *predictions, m *Model) (*Metrics, error) {
	mt := &Metrics{TestRows: len(y)}
	var err error
	switch m.Objective {
	case mlspec.Regression:
		mt.Regression, err = metrics.EvaluateRegression(y, p.values)
	case mlspec.Binary:
		mt.Classification, err = metrics.EvaluateBinary(y, p.values)
	case mlspec.Multiclass:
		mt.Classification, err = metrics.EvaluateMulticlass(y, p.values, m.Classes)
	}
	return mt, err
}

// loadPredictor builds the predictor for a decoded model.
func loadPredictor(m *Model, threads int) (predictor, func(), error) {
	switch m.Algorithm {
	case mlspec.XGBoost, mlspec.RandomForest:
		b, err := xgboost.LoadJSON(m.Inner, threads)
		if err != nil {
			return nil, nil, err
		}
		return &xgbPredictor{b: b, threads: threads, obj: m.Objective, classes: m.Classes}, func() { b.Close() }, nil
	default:
		lm, err := linear.Decode(m.Inner)
		if err != nil {
			return nil, nil, err
		}
		return linearPredictor{lm}, func() {}, nil
	}
}

func runApply(cfg Config, spec *mlspec.Params, inputs map[string]Input, outputs map[string]Output) (*Result, error) {
	raw, err := inputs[mlspec.InputModel].readAll(MaxModelSize)
	if err != nil {
		return nil, fmt.Errorf("ml job: model input: %w", err)
	}
	m, err := DecodeModel(raw)
	if err != nil {
		return nil, fmt.Errorf("ml job: model input: %w", err)
	}
	features := m.Features
	if spec.Features != nil {
		if !slices.Equal(spec.Features, m.Features) {
			return nil, fmt.Errorf("ml job: features %s differ from the model's %s", strings.Join(spec.Features, ","), strings.Join(m.Features, ","))
		}
	}
	label := ""
	if spec.Task == mlspec.Evaluate {
		label = cmpOr(spec.Label, m.Label)
		if label == "" {
			return nil, errors.New("ml job: the model records no label column: give label to evaluate")
		}
	}
	data := inputs[mlspec.InputData]
	d, err := readDataset(data, table.Selection{Features: features, Label: label})
	if err != nil {
		return nil, fmt.Errorf("ml job: data input does not fit the model (features %s): %w", strings.Join(features, ", "), err)
	}
	if spec.Task == mlspec.Evaluate {
		if _, err := checkLabels(d, m.Objective); err != nil {
			return nil, fmt.Errorf("ml job: %w", err)
		}
		if m.Objective == mlspec.Multiclass {
			for i, v := range d.Y {
				if int(v) >= m.Classes {
					return nil, fmt.Errorf("ml job: label column %q, row %d: class index beyond the model's %d classes", label, i+1, m.Classes)
				}
			}
		}
	}
	p, done, err := loadPredictor(m, cfg.Threads)
	if err != nil {
		return nil, fmt.Errorf("ml job: model input: %w", err)
	}
	defer done()
	pred, err := p.predict(d.X)
	if err != nil {
		return nil, fmt.Errorf("ml job: predict: %w", err)
	}
	res := &Result{Task: spec.Task, Model: m, Rows: d.X.NumRows(), Preview: &Preview{X: d.X, Label: d.Y, Pred: pred.class()}}
	var predTable []byte
	if o, ok := outputs[mlspec.OutputPredictions]; ok {
		f := cmpOr(o.Format, data.Format)
		if predTable, err = predictionTable(data, f, pred); err != nil {
			return nil, fmt.Errorf("ml job: predictions: %w", err)
		}
	}
	if spec.Task == mlspec.Evaluate {
		mt, err := score(d.Y, pred, m)
		if err != nil {
			return nil, fmt.Errorf("ml job: metrics: %w", err)
		}
		res.Report = reportOf(mlspec.Evaluate, m, mt)
		res.Report.Label = label
		var buf bytes.Buffer
		if err := writeReport(&buf, res.Report); err != nil {
			return nil, err
		}
		if o, ok := outputs[mlspec.OutputReport]; ok {
			if _, err := o.W.Write(buf.Bytes()); err != nil {
				return nil, fmt.Errorf("ml job: write report: %w", err)
			}
		}
	}
	if predTable != nil {
		if _, err := outputs[mlspec.OutputPredictions].W.Write(predTable); err != nil {
			return nil, fmt.Errorf("ml job: write predictions: %w", err)
		}
	}
	return res, nil
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// rowRange is the row indices [lo, hi).
func rowRange(lo, hi int) []int {
	idx := make([]int, hi-lo)
	for i := range idx {
		idx[i] = lo + i
	}
	return idx
}
