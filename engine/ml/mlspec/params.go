// Package mlspec reads the ml engine's manifest parameters (docs/ml.md, "Jobs"): the task,
// the algorithm and its parameters, features, label, test split and an optional shaping query.
// It is the pure-Go half of the ml engine (engine/ml trains and applies models with XGBoost):
// the key service and the CLI use it to compute job digests without linking XGBoost.
package mlspec

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
)

// Name is the manifest's engine value.
const Name = "ml"

// DefaultThreads is resources.threads for an ml job whose manifest omits it
// (job.DefaultThreads for other engines).
const DefaultThreads = 1

// Task is what a job does.
type Task string

const (
	Train    Task = "train"
	Predict  Task = "predict"
	Evaluate Task = "evaluate"
)

// Algorithm is the model family a train job fits.
type Algorithm string

const (
	XGBoost            Algorithm = "xgboost"
	RandomForest       Algorithm = "random_forest"
	LinearRegression   Algorithm = "linear_regression"
	LogisticRegression Algorithm = "logistic_regression"
)

// Objective is the kind of prediction.
type Objective string

const (
	Regression Objective = "regression"
	Binary     Objective = "binary"
	Multiclass Objective = "multiclass"
)

// AllExceptLabel is the features value that selects every column but the label.
const AllExceptLabel = "all_except_label"

// Defaults.
const (
	DefaultRounds       = 100
	DefaultForestTrees  = 100
	DefaultTestFraction = 0.2
)

// Input, output and parameter names.
const (
	InputTrain        = "train"
	InputData         = "data"
	InputModel        = "model"
	OutputModel       = "model"
	OutputPredictions = "predictions"
	OutputReport      = "report"
)

// Params are a validated ml job: the manifest's parameters, or ppml ml's flags.
type Params struct {
	Task      Task
	Algorithm Algorithm // train only
	Objective Objective // train only
	// Features are the feature columns in order; nil means all columns but the label.
	Features []string
	// Label is the label column: required to train; for evaluate "" means the model's label.
	Label string
	// Params go to XGBoost by name, in order; for logistic regression only l2 and
	// max_iterations; linear regression has none.
	Params []Param
	// Rounds of boosting (xgboost); a random forest is always one round.
	Rounds int
	// TestFraction of the rows is held out (seeded split) to compute the model's metrics;
	// 0 trains on every row and records no metrics.
	TestFraction float64
	Seed         uint64
	// Query, when set, is a SQL statement the SQL engine runs over the inputs to make the
	// training table (see Shaper).
	Query string
	// Workers is the number of ppml-run workers that train together (distributed XGBoost,
	// docs/cluster.md); 1 trains in one process. With more than one, Partition says how
	// the training input is split and CertificatePolicy under which certificate policy
	// the workers obtain the identities they recognise each other by.
	Workers           int
	Partition         Partition
	CertificatePolicy string
}

// Partition is how a distributed train job's input is split between its workers.
type Partition string

// The partitions. Under both, the rows of all workers in worker order are the rows of the
// whole train input (a file, or a directory's files in the launcher's sorted order).
const (
	// PartitionFiles: the train input is a directory whose files are dealt to the workers
	// in contiguous blocks — worker i of n reads files [i·F/n, (i+1)·F/n) of F — so that
	// each worker decrypts only its own files. The default.
	PartitionFiles Partition = "files"
	// PartitionRows: every worker is given the whole train input (one file, or a
	// directory) and decrypts all of it, then trains on its contiguous block of rows —
	// worker i of n keeps rows [i·R/n, (i+1)·R/n) of R (WorkerRows).
	PartitionRows Partition = "rows"
)

// MaxWorkers bounds Workers.
const MaxWorkers = 256

// Distributed reports whether the job trains on more than one worker.
func (s *Params) Distributed() bool { return s.Workers > 1 }

// JobWorkers is the number of workers the job runs on (launcher.Distributed).
func (s *Params) JobWorkers() int { return max(s.Workers, 1) }

// WorkerInputFiles gives worker index its block of the training input's files
// (launcher.Distributed).
func (s *Params) WorkerInputFiles(input string, files []string, index int) ([]string, error) {
	if !s.Distributed() {
		return files, nil
	}
	if s.Partition == PartitionRows {
		if index < 0 || index >= s.Workers {
			return nil, fmt.Errorf("worker %d of %d", index, s.Workers)
		}
		return files, nil // every worker reads all rows, and keeps its block (WorkerRows)
	}
	return WorkerFiles(files, index, s.Workers)
}

// WorkerRows is the block of rows [lo, hi) of a table of rows rows that worker index of n
// trains on under PartitionRows.
func WorkerRows(rows, index, n int) (lo, hi int, err error) {
	if n < 1 || index < 0 || index >= n {
		return 0, 0, fmt.Errorf("worker %d of %d", index, n)
	}
	lo, hi = rows*index/n, rows*(index+1)/n
	if hi <= lo {
		return 0, 0, fmt.Errorf("the table has %d row(s) for %d workers: partition rows gives each worker at least one row", rows, n)
	}
	return lo, hi, nil
}

// WorkerFiles is the block of files (sorted, as the launcher lists an input directory)
// that worker index of n reads under PartitionFiles. Every worker reads at least one file.
func WorkerFiles(files []string, index, n int) ([]string, error) {
	if n < 1 || index < 0 || index >= n {
		return nil, fmt.Errorf("worker %d of %d", index, n)
	}
	if len(files) < n {
		return nil, fmt.Errorf("%d file(s) for %d workers: partition files gives each worker at least one file (split the table into at least %d files)", len(files), n, n)
	}
	lo, hi := len(files)*index/n, len(files)*(index+1)/n
	return files[lo:hi], nil
}

// Param is one algorithm parameter, by name, in the manifest's order: XGBoost's own
// parameters (XGBoost checks their names and values), or a linear model's.
type Param struct{ Name, Value string }

// Validate checks Params built in code (ParseParameters produces valid ones).
func (s *Params) Validate() error {
	var probs []string
	bad := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	switch s.Task {
	case Train:
		switch s.Algorithm {
		case XGBoost, RandomForest:
			if s.Objective != Regression && s.Objective != Binary && s.Objective != Multiclass {
				bad("objective %q: want regression, binary or multiclass", s.Objective)
			}
		case LinearRegression:
			if s.Objective != Regression {
				bad("linear_regression fits objective regression, not %q", s.Objective)
			}
		case LogisticRegression:
			if s.Objective != Binary {
				bad("logistic_regression fits objective binary, not %q", s.Objective)
			}
		default:
			bad("algorithm %q: want xgboost, random_forest, linear_regression or logistic_regression", s.Algorithm)
		}
		if s.Label == "" {
			bad("label: required to train")
		}
		if s.Algorithm == XGBoost && s.Rounds < 1 {
			bad("rounds %d: must be at least 1", s.Rounds)
		}
		if s.Algorithm == RandomForest && s.Rounds != 1 {
			bad("rounds %d: a random forest is one round of num_parallel_tree trees", s.Rounds)
		}
		if !(s.TestFraction == 0 || s.TestFraction > 0 && s.TestFraction < 1) {
			bad("test_fraction %v: must be 0 (no test split) or in (0, 1)", s.TestFraction)
		}
		if err := checkParamNames(s.Algorithm, s.Params); err != nil {
			bad("%v", err)
		}
		if err := s.checkDistributed(); err != nil {
			bad("%v", err)
		}
	case Predict, Evaluate:
		if s.Algorithm != "" || s.Objective != "" || len(s.Params) > 0 || s.Query != "" || s.TestFraction != 0 {
			bad("%s takes the algorithm, objective and parameters from the model: only features and label apply", s.Task)
		}
		if s.Task == Predict && s.Label != "" {
			bad("predict takes no label")
		}
		if s.Workers > 1 || s.Partition != "" || s.CertificatePolicy != "" {
			bad("%s runs on one worker: workers, partition and certificate_policy are for train", s.Task)
		}
	default:
		bad("task %q: want train, predict or evaluate", s.Task)
	}
	if slices.Contains(s.Features, s.Label) && s.Label != "" {
		bad("column %q is both a feature and the label", s.Label)
	}
	if len(probs) > 0 {
		return fmt.Errorf("ml job: %s", strings.Join(probs, "; "))
	}
	return nil
}

// checkDistributed checks the distributed fields of a train job built in code.
func (s *Params) checkDistributed() error {
	switch {
	case s.Workers < 0 || s.Workers > MaxWorkers:
		return fmt.Errorf("workers %d: must be between 1 and %d", s.Workers, MaxWorkers)
	case s.Workers <= 1:
		if s.Partition != "" || s.CertificatePolicy != "" {
			return errors.New("partition and certificate_policy are for a job with more than one worker")
		}
		return nil
	case s.Algorithm != XGBoost && s.Algorithm != RandomForest:
		return fmt.Errorf("workers %d: only xgboost and random_forest train on several workers, not %s", s.Workers, s.Algorithm)
	case s.Partition != PartitionFiles && s.Partition != PartitionRows:
		return fmt.Errorf("partition %q: want files or rows", s.Partition)
	case s.Query != "":
		return errors.New("a distributed job has no query: each worker reads its part of the train input")
	case s.Objective == Multiclass && !slices.ContainsFunc(s.Params, func(p Param) bool { return p.Name == "num_class" }):
		return errors.New("multiclass on several workers needs params.num_class")
	}
	return api.CheckCertPolicyName(s.CertificatePolicy)
}

// Linear-model parameter names (XGBoost's are checked by XGBoost itself).
var linearParams = map[Algorithm][]string{
	LinearRegression:   {},
	LogisticRegression: {"l2", "max_iterations"},
}

func checkParamNames(a Algorithm, ps []Param) error {
	known, linear := linearParams[a]
	if !linear {
		return nil
	}
	for _, p := range ps {
		if !slices.Contains(known, p.Name) {
			if len(known) == 0 {
				return fmt.Errorf("params: %s takes no parameters (got %q)", a, p.Name)
			}
			return fmt.Errorf("params: unknown parameter %q for %s (known: %s)", p.Name, a, strings.Join(known, ", "))
		}
	}
	return nil
}

// InputNames are the inputs a task reads (the first is required, the rest optional).
func (s *Params) InputNames() (required, optional []string) {
	switch s.Task {
	case Train:
		return nil, []string{InputTrain, InputData} // exactly one of them
	default:
		return []string{InputModel, InputData}, nil
	}
}

// OutputNames are the outputs a task writes.
func (s *Params) OutputNames() (required, optional []string) {
	switch s.Task {
	case Train:
		return []string{OutputModel}, []string{OutputReport}
	case Predict:
		return []string{OutputPredictions}, nil
	default:
		// The report is optional so that ppml ml evaluate can only print it.
		return nil, []string{OutputReport, OutputPredictions}
	}
}

// Canonical implements job.Parameters: every default explicit, floats as their shortest
// decimal text.
func (s *Params) Canonical() map[string]any {
	feats := []any{}
	for _, f := range s.Features {
		feats = append(feats, f)
	}
	var features any = feats
	if s.Features == nil {
		features = AllExceptLabel
	}
	params := []any{}
	for _, p := range s.Params {
		params = append(params, map[string]any{"name": p.Name, "value": p.Value})
	}
	c := map[string]any{
		"task":          string(s.Task),
		"algorithm":     string(s.Algorithm),
		"objective":     string(s.Objective),
		"features":      features,
		"label":         s.Label,
		"params":        params,
		"rounds":        int64(s.Rounds),
		"test_fraction": strconv.FormatFloat(s.TestFraction, 'g', -1, 64),
		"seed":          strconv.FormatUint(s.Seed, 10),
		"query":         s.Query,
	}
	// One worker is the default and has no distributed fields: a one-worker job keeps the
	// digest it had before jobs could be distributed (and workers: 1 written out is the
	// same job). With more, every distributed field is explicit.
	if s.Distributed() {
		c["workers"] = int64(s.Workers)
		c["partition"] = string(s.Partition)
		c["certificate_policy"] = s.CertificatePolicy
	}
	return c
}

// Spec is the ml engine's job.Spec.
var Spec job.Spec = spec{}

type spec struct{}

func (spec) Name() string { return Name }

// DefaultThreads implements job.ThreadsDefaulter: an ml job whose manifest omits
// resources.threads trains with one XGBoost thread. OpenMP spins for seconds on
// small machines with more, and one thread makes training reproducible.
func (spec) DefaultThreads() int { return DefaultThreads }

// ParseParameters reads the parameters section with the manifest's strictness: unknown
// fields, wrong types and values that do not fit the task are problems at their field.
func (spec) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required for engine ml (at least task)")
		return nil
	}
	fs, ok := n.CheckedFields(c, "task", "algorithm", "objective", "features", "label", "params", "rounds", "test_fraction", "seed", "query",
		"workers", "partition", "certificate_policy")
	if !ok {
		return nil
	}
	s := &Params{}
	str := func(name string) (string, job.Node, bool) {
		fn, ok := fs[name]
		if !ok {
			return "", n.Missing(name), false
		}
		v, err := fn.Str()
		if err != nil {
			c.Add(err)
			return "", fn, false
		}
		return v, fn, true
	}
	task, tn, ok := str("task")
	if !ok {
		if _, there := fs["task"]; !there {
			c.Failf(tn, "required: train, predict or evaluate")
		}
		return nil
	}
	s.Task = Task(task)
	if s.Task != Train && s.Task != Predict && s.Task != Evaluate {
		c.Failf(tn, "%q: want train, predict or evaluate", task)
		return nil
	}
	trainOnly := func(name string) {
		if fn, ok := fs[name]; ok && s.Task != Train {
			c.Failf(fn, "only for task train (%s takes it from the model)", s.Task)
		}
	}
	for _, f := range []string{"algorithm", "objective", "params", "rounds", "test_fraction", "seed", "query", "workers", "partition", "certificate_policy"} {
		trainOnly(f)
	}
	if s.Task != Train {
		if s.Task == Predict {
			if fn, ok := fs["label"]; ok {
				c.Failf(fn, "predict takes no label")
			}
		}
	}
	if fn, ok := fs["features"]; ok {
		if fn.IsScalar() {
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
				if f == "" {
					c.Failf(nodes[i], "empty column name")
				} else if seen[f] {
					c.Failf(nodes[i], "column %q is listed twice", f)
				}
				seen[f] = true
			}
			s.Features = list
		}
	}
	if v, vn, ok := str("label"); ok {
		if v == "" {
			c.Failf(vn, "must not be empty")
		} else if slices.Contains(s.Features, v) {
			c.Failf(vn, "column %q is both a feature and the label", v)
		}
		s.Label = v
	}
	if s.Task != Train {
		return s
	}

	if s.Label == "" {
		if _, there := fs["label"]; !there {
			c.Failf(n.Missing("label"), "required to train: the label column")
		}
	}
	a, an, ok := str("algorithm")
	if !ok {
		if _, there := fs["algorithm"]; !there {
			c.Failf(an, "required to train: xgboost, random_forest, linear_regression or logistic_regression")
		}
	} else {
		s.Algorithm = Algorithm(a)
		switch s.Algorithm {
		case XGBoost, RandomForest, LinearRegression, LogisticRegression:
		default:
			c.Failf(an, "%q: want xgboost, random_forest, linear_regression or logistic_regression", a)
			s.Algorithm = ""
		}
	}
	if o, on, ok := str("objective"); ok {
		s.Objective = Objective(o)
		switch s.Objective {
		case Regression, Binary, Multiclass:
		default:
			c.Failf(on, "%q: want regression, binary or multiclass", o)
		}
		if s.Algorithm == LinearRegression && s.Objective != Regression || s.Algorithm == LogisticRegression && s.Objective != Binary {
			c.Failf(on, "%s does not fit objective %s", s.Algorithm, o)
		}
	} else if _, there := fs["objective"]; !there {
		switch s.Algorithm {
		case LinearRegression:
			s.Objective = Regression
		case LogisticRegression:
			s.Objective = Binary
		case XGBoost, RandomForest:
			c.Failf(on, "required for %s: regression, binary or multiclass", s.Algorithm)
		}
	}
	if pn, ok := fs["params"]; ok {
		entries, err := pn.Entries()
		if err != nil {
			c.Add(err)
		}
		for _, e := range entries {
			v, err := e.Value.Str()
			if err != nil {
				c.Add(err)
				continue
			}
			s.Params = append(s.Params, Param{Name: e.Name, Value: v})
		}
		if err := checkParamNames(s.Algorithm, s.Params); err != nil {
			c.Failf(pn, "%v", err)
		}
	}
	switch s.Algorithm {
	case RandomForest:
		s.Rounds = 1
	case XGBoost:
		s.Rounds = DefaultRounds
	}
	if rn, ok := fs["rounds"]; ok {
		v, err := rn.Int()
		switch {
		case err != nil:
			c.Add(err)
		case s.Algorithm == LinearRegression || s.Algorithm == LogisticRegression:
			c.Failf(rn, "only for xgboost")
		case s.Algorithm == RandomForest && v != 1:
			c.Failf(rn, "a random forest is one round; set the number of trees with params.num_parallel_tree")
		case v < 1 || v > 100000:
			c.Failf(rn, "%d: must be between 1 and 100000", v)
		default:
			s.Rounds = int(v)
		}
	}
	s.TestFraction = DefaultTestFraction
	if v, vn, ok := str("test_fraction"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || !(f == 0 || f > 0 && f < 1) {
			c.Failf(vn, "%q: want 0 (no test split) or a fraction in (0, 1) such as 0.2", v)
		} else {
			s.TestFraction = f
		}
	}
	if v, vn, ok := str("seed"); ok {
		u, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			c.Failf(vn, "%q: want an unsigned 64-bit integer", v)
		}
		s.Seed = u
	}
	if v, vn, ok := str("query"); ok {
		if strings.TrimSpace(v) == "" {
			c.Failf(vn, "must not be empty")
		}
		s.Query = v
	}
	parseDistributed(s, n, fs, c)
	return s
}

// parseDistributed reads workers, partition and certificate_policy of a train job.
func parseDistributed(s *Params, n job.Node, fs map[string]job.Node, c *job.Checker) {
	s.Workers = 1
	if wn, ok := fs["workers"]; ok {
		v, err := wn.Int()
		switch {
		case err != nil:
			c.Add(err)
			return
		case v < 1 || v > MaxWorkers:
			c.Failf(wn, "%d: must be between 1 and %d", v, MaxWorkers)
			return
		}
		s.Workers = int(v)
	}
	pn, hasPartition := fs["partition"]
	cn, hasPolicy := fs["certificate_policy"]
	if !s.Distributed() {
		for name, fn := range map[string]job.Node{"partition": pn, "certificate_policy": cn} {
			if _, there := fs[name]; there {
				c.Failf(fn, "only for a job with more than one worker (workers)")
			}
		}
		return
	}
	wn := fs["workers"]
	if s.Algorithm != XGBoost && s.Algorithm != RandomForest && s.Algorithm != "" {
		c.Failf(wn, "only xgboost and random_forest train on several workers, not %s", s.Algorithm)
	}
	if fn, ok := fs["query"]; ok {
		c.Failf(fn, "a job with more than one worker has no query: each worker reads its part of the train input")
	}
	if s.Objective == Multiclass && !slices.ContainsFunc(s.Params, func(p Param) bool { return p.Name == "num_class" }) {
		c.Failf(wn, "multiclass on several workers needs params.num_class: the workers must agree on the number of classes, and none sees the others' labels")
	}
	s.Partition = PartitionFiles
	if hasPartition {
		v, err := pn.Str()
		switch {
		case err != nil:
			c.Add(err)
		case Partition(v) == PartitionFiles || Partition(v) == PartitionRows:
			s.Partition = Partition(v)
		default:
			c.Failf(pn, "%q: want files (each worker reads a block of the files of the train input directory) or rows (each worker reads the whole input and trains on a block of its rows)", v)
		}
	}
	if !hasPolicy {
		c.Failf(n.Missing("certificate_policy"), "required with more than one worker: the certificate policy (TENANT/NAME) the workers obtain their identities under")
		return
	}
	v, err := cn.Str()
	if err != nil {
		c.Add(err)
		return
	}
	if err := api.CheckCertPolicyName(v); err != nil {
		c.Failf(cn, "%v", err)
	}
	s.CertificatePolicy = v
}

// CheckNames checks a manifest's input and output names against the task, so that the
// launcher (or ppml job validate) can refuse a job before decrypting anything. A train job
// with a query may name its inputs freely (they are the query's tables).
func (s *Params) CheckNames(inputs, outputs []string) error {
	set := func(names []string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, n := range names {
			m[n] = struct{}{}
		}
		return m
	}
	req, opt := s.OutputNames()
	if err := CheckNameSet(set(outputs), req, append(req, opt...), "output"); err != nil {
		return err
	}
	switch {
	case s.Task != Train:
		return CheckNameSet(set(inputs), []string{InputModel, InputData}, []string{InputModel, InputData}, "input")
	case s.Query != "":
		if len(inputs) == 0 {
			return errors.New("ml job: a query needs at least one input table")
		}
		return nil
	case len(inputs) != 1 || inputs[0] != InputTrain && inputs[0] != InputData:
		return errors.New("ml job: a train job reads exactly one input, named train (or data)")
	}
	return nil
}

// CheckManifest implements job.ManifestChecker: the manifest's inputs and outputs must fit
// the task, and a predictions output must be a table (its content type, or else its file
// name, says CSV or Parquet; application/octet-stream leaves the input's format).
func (s *Params) CheckManifest(m *job.Manifest, c *job.Checker) {
	var ins, outs []string
	for _, in := range m.Inputs {
		ins = append(ins, in.Name)
	}
	for _, o := range m.Outputs {
		outs = append(outs, o.Name)
	}
	if err := s.CheckNames(ins, outs); err != nil {
		c.Add(&job.Problem{Field: "inputs/outputs", Message: strings.TrimPrefix(err.Error(), "ml job: ")})
	}
	if o, ok := m.Output(OutputPredictions); ok {
		if o.ContentType != job.DefaultContentType {
			if _, err := ParseFormat(o.ContentType); err != nil {
				c.Add(&job.Problem{Line: o.Line, Field: "outputs.predictions.content_type", Message: err.Error()})
			}
		}
	}
}

// PredictionsFormat is the format of a manifest's predictions output: from its content type,
// else its file name; "" means the data input's format.
func PredictionsFormat(o job.Output) Format {
	if f, err := ParseFormat(o.ContentType); err == nil {
		return f
	}
	f, _ := FormatOf(o.Path)
	return f
}
