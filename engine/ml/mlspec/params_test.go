package mlspec

import (
	"strings"
	"testing"

	"github.com/ppml/ppml/job"
)

var specs = job.NewSpecSet(Spec)

func parseManifest(params string) (*job.Manifest, error) {
	doc := "version: 1\nname: t\nengine: ml\ninputs:\n  train: /data/x.csv.ppml\noutputs:\n  model: {path: /out/m.ppml, key: file:/k}\nparameters:\n" + params
	return job.Parse([]byte(doc), "/", specs)
}

func TestParameters(t *testing.T) {
	m, err := parseManifest("  task: train\n  algorithm: xgboost\n  objective: multiclass\n  label: y\n  features: [a, b]\n  params: {max_depth: 3, eta: 0.1}\n  rounds: 7\n  test_fraction: 0.25\n  seed: 9\n")
	if err != nil {
		t.Fatal(err)
	}
	s := m.Parameters.(*Params)
	if s.Task != Train || s.Algorithm != XGBoost || s.Objective != Multiclass || s.Label != "y" || strings.Join(s.Features, ",") != "a,b" ||
		len(s.Params) != 2 || s.Params[0] != (Param{"max_depth", "3"}) || s.Params[1] != (Param{"eta", "0.1"}) ||
		s.Rounds != 7 || s.TestFraction != 0.25 || s.Seed != 9 {
		t.Fatalf("%+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// Defaults are explicit in the canonical form, so spelling them out keeps the digest.
	a, err := parseManifest("  task: train\n  algorithm: linear_regression\n  label: y\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseManifest("  task: train\n  algorithm: linear_regression\n  objective: regression\n  label: y\n  features: all_except_label\n  test_fraction: 0.2\n  seed: 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() {
		t.Errorf("defaults change the digest:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	if s := a.Parameters.(*Params); s.Objective != Regression || s.TestFraction != DefaultTestFraction || s.Features != nil {
		t.Errorf("defaults: %+v", s)
	}
}

// An ml manifest without resources.threads trains with one thread, and the
// digest cannot tell it from one that writes threads: 1.
func TestDefaultThreads(t *testing.T) {
	const params = "  task: train\n  algorithm: xgboost\n  objective: regression\n  label: y\n"
	omitted, err := parseManifest(params)
	if err != nil {
		t.Fatal(err)
	}
	if omitted.Resources.Threads != DefaultThreads || DefaultThreads != 1 {
		t.Fatalf("threads %d, want 1", omitted.Resources.Threads)
	}
	explicit, err := parseManifest(params + "resources: {threads: 1}\n")
	if err != nil {
		t.Fatal(err)
	}
	if omitted.DigestString() != explicit.DigestString() {
		t.Errorf("threads: 1 changes the digest:\n%s\n%s", omitted.Canonical(), explicit.Canonical())
	}
	more, err := parseManifest(params + "resources: {threads: 2}\n")
	if err != nil {
		t.Fatal(err)
	}
	if more.Resources.Threads != 2 {
		t.Errorf("explicit threads: %d, want 2", more.Resources.Threads)
	}
}

func TestParameterProblems(t *testing.T) {
	for _, c := range []struct{ params, want string }{
		{"  task: train\n  algorithm: xgboost\n  objective: regression\n  label: y\n  learning_rate: 1\n", "parameters.learning_rate: unknown field"},
		{"  task: fit\n", `"fit": want train, predict or evaluate`},
		{"  task: train\n  algorithm: xgboost\n  label: y\n", "required for xgboost"},
		{"  task: train\n  algorithm: svm\n  label: y\n", `"svm": want xgboost`},
		{"  task: train\n  algorithm: xgboost\n  objective: regression\n", "label"},
		{"  task: train\n  algorithm: linear_regression\n  objective: binary\n  label: y\n", "does not fit objective binary"},
		{"  task: train\n  algorithm: random_forest\n  objective: binary\n  label: y\n  rounds: 5\n", "num_parallel_tree"},
		{"  task: train\n  algorithm: xgboost\n  objective: regression\n  label: y\n  test_fraction: 1.5\n", "test_fraction"},
		{"  task: train\n  algorithm: xgboost\n  objective: regression\n  label: y\n  features: [a, a]\n", `"a" is listed twice`},
		{"  task: train\n  algorithm: xgboost\n  objective: regression\n  label: a\n  features: [a, b]\n", "both a feature and the label"},
		{"  task: train\n  algorithm: logistic_regression\n  label: y\n  params: {C: 1}\n", `unknown parameter "C"`},
		{"  task: predict\n  algorithm: xgboost\n", "only for task train"},
		{"  task: predict\n  label: y\n", "predict takes no label"},
		{"  task: train\n  algorithm: xgboost\n  objective: regression\n  label: y\n  seed: -1\n", "unsigned"},
	} {
		_, err := parseManifest(c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.params, err, c.want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"csv": CSV, "text/csv; charset=utf-8": CSV, "Parquet": Parquet, "application/vnd.apache.parquet": Parquet} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseFormat("application/json"); err == nil {
		t.Error("json accepted as a table format")
	}
}

func TestCheckNames(t *testing.T) {
	train := &Params{Task: Train}
	predict := &Params{Task: Predict}
	for _, c := range []struct {
		s       *Params
		in, out []string
		want    string
	}{
		{train, []string{"train"}, []string{"model", "report"}, ""},
		{train, []string{"data"}, []string{"model"}, ""},
		{train, []string{"train", "data"}, []string{"model"}, "exactly one input"},
		{train, []string{"train"}, []string{"report"}, `missing output "model"`},
		{train, []string{"train"}, []string{"model", "preds"}, `unknown output(s) "preds"`},
		{&Params{Task: Train, Query: "SELECT 1"}, []string{"a", "b"}, []string{"model"}, ""},
		{predict, []string{"model", "data"}, []string{"predictions"}, ""},
		{predict, []string{"data"}, []string{"predictions"}, `missing input "model"`},
		{&Params{Task: Evaluate}, []string{"model", "data"}, []string{"report", "predictions"}, ""},
	} {
		err := c.s.CheckNames(c.in, c.out)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s %v %v: %v, want %q", c.s.Task, c.in, c.out, err, c.want)
		}
	}
}

func TestCheckManifest(t *testing.T) {
	doc := func(outputs string) string {
		return "version: 1\nname: t\nengine: ml\ninputs:\n  model: /m.ppml\n  data: /d.ppml\noutputs:\n" + outputs + "parameters:\n  task: predict\n"
	}
	m, err := job.Parse([]byte(doc("  predictions: {path: /p.parquet.ppml, key: file:/k}\n")), "/", specs)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := m.Output(OutputPredictions)
	if PredictionsFormat(o) != Parquet {
		t.Errorf("format %q", PredictionsFormat(o))
	}
	for _, c := range []struct{ outputs, want string }{
		{"  report: {path: /r.ppml, key: file:/k}\n", `missing output "predictions"`},
		{"  predictions: {path: /p.ppml, key: file:/k, content_type: application/json}\n", "outputs.predictions.content_type"},
	} {
		if _, err := job.Parse([]byte(doc(c.outputs)), "/", specs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.outputs, err, c.want)
		}
	}
}

// A train job on several workers: its distributed fields are explicit in
// the canonical form, and a job on one worker (workers omitted or 1) has
// none of them, so its digest is the one it had before.
func TestDistributedParameters(t *testing.T) {
	const base = "  task: train\n  algorithm: xgboost\n  objective: binary\n  label: y\n  test_fraction: 0\n"
	m, err := parseManifest(base + "  workers: 3\n  certificate_policy: alice/xgb-train\n")
	if err != nil {
		t.Fatal(err)
	}
	s := m.Parameters.(*Params)
	if s.Workers != 3 || s.Partition != PartitionFiles || s.CertificatePolicy != "alice/xgb-train" || !s.Distributed() || s.JobWorkers() != 3 {
		t.Fatalf("%+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c := s.Canonical()
	if c["workers"] != int64(3) || c["partition"] != "files" || c["certificate_policy"] != "alice/xgb-train" {
		t.Errorf("canonical: %v", c)
	}
	explicit, err := parseManifest(base + "  workers: 3\n  partition: files\n  certificate_policy: alice/xgb-train\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest() != explicit.Digest() {
		t.Error("partition: files (the default) changes the digest")
	}
	one, err := parseManifest(base)
	if err != nil {
		t.Fatal(err)
	}
	oneExplicit, err := parseManifest(base + "  workers: 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if one.Digest() != oneExplicit.Digest() || one.Digest() == m.Digest() {
		t.Error("workers: 1 is not the default, or workers: 3 the same job")
	}
	if _, there := one.Parameters.Canonical()["workers"]; there {
		t.Error("a one-worker job has distributed fields in its canonical form")
	}
	if s := one.Parameters.(*Params); s.Distributed() || s.JobWorkers() != 1 {
		t.Errorf("one worker: %+v", s)
	}
}

func TestDistributedParameterProblems(t *testing.T) {
	const base = "  task: train\n  algorithm: xgboost\n  objective: binary\n  label: y\n"
	for _, c := range []struct{ params, want string }{
		{base + "  test_fraction: 0\n  workers: 2\n", "parameters.certificate_policy: required with more than one worker"},
		{base + "  test_fraction: 0\n  workers: 0\n", "parameters.workers: 0: must be between 1 and 256"},
		{base + "  test_fraction: 0\n  workers: 257\n", "must be between 1 and 256"},
		{base + "  test_fraction: 0\n  workers: two\n", "parameters.workers"},
		{base + "  test_fraction: 0\n  workers: 2\n  certificate_policy: xgb\n", "want TENANT/NAME"},
		{base + "  test_fraction: 0\n  workers: 2\n  partition: columns\n  certificate_policy: alice/x\n", `parameters.partition: "columns": want files (`},
		{base + "  test_fraction: 0\n  workers: 2\n  partition: [rows]\n  certificate_policy: alice/x\n", `parameters.partition`},
		{base + "  test_fraction: 0\n  partition: rows\n", "parameters.partition: only for a job with more than one worker"},
		{base + "  test_fraction: 0\n  partition: files\n", "parameters.partition: only for a job with more than one worker"},
		{base + "  certificate_policy: alice/x\n", "parameters.certificate_policy: only for a job with more than one worker"},
		{base + "  test_fraction: 0\n  workers: 2\n  certificate_policy: alice/x\n  query: SELECT * FROM train\n", "parameters.query: a job with more than one worker has no query"},
		{"  task: train\n  algorithm: logistic_regression\n  label: y\n  test_fraction: 0\n  workers: 2\n  certificate_policy: alice/x\n", "only xgboost and random_forest"},
		{"  task: train\n  algorithm: xgboost\n  objective: multiclass\n  label: y\n  test_fraction: 0\n  workers: 2\n  certificate_policy: alice/x\n", "needs params.num_class"},
		{"  task: predict\n  workers: 2\n", "parameters.workers: only for task train"},
	} {
		_, err := parseManifest(c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.params, err, c.want)
		}
	}
	// Params built in code are checked the same way.
	for _, s := range []*Params{
		{Task: Train, Algorithm: XGBoost, Objective: Binary, Label: "y", Rounds: 1, Workers: 2, Partition: PartitionFiles},
		{Task: Train, Algorithm: XGBoost, Objective: Binary, Label: "y", Rounds: 1, Workers: 2, Partition: "columns", CertificatePolicy: "alice/x"},
		{Task: Train, Algorithm: XGBoost, Objective: Binary, Label: "y", Rounds: 1, Workers: 1, CertificatePolicy: "alice/x"},
		{Task: Predict, Workers: 2},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v validated", s)
		}
	}
}

func TestWorkerFiles(t *testing.T) {
	files := []string{"a", "b", "c", "d", "e"}
	var all []string
	for i := range 3 {
		got, err := WorkerFiles(files, i, 3)
		if err != nil || len(got) == 0 {
			t.Fatalf("worker %d: %v %v", i, got, err)
		}
		all = append(all, got...)
	}
	if strings.Join(all, "") != "abcde" {
		t.Errorf("blocks in worker order: %v", all)
	}
	if _, err := WorkerFiles(files[:2], 0, 3); err == nil || !strings.Contains(err.Error(), "2 file(s) for 3 workers") {
		t.Errorf("fewer files than workers: %v", err)
	}
}

// A distributed job may hold out test rows (each worker its share, the
// default 0.2 included), and may partition rows instead of files: another
// job, whose canonical form says so.
func TestDistributedHeldOutAndRowPartition(t *testing.T) {
	const base = "  task: train\n  algorithm: xgboost\n  objective: binary\n  label: y\n  workers: 2\n  certificate_policy: alice/x\n"
	held, err := parseManifest(base)
	if err != nil {
		t.Fatal(err)
	}
	if s := held.Parameters.(*Params); s.TestFraction != DefaultTestFraction || s.Validate() != nil {
		t.Errorf("default test_fraction on 2 workers: %+v %v", s, s.Validate())
	}
	rows, err := parseManifest(base + "  partition: rows\n")
	if err != nil {
		t.Fatal(err)
	}
	s := rows.Parameters.(*Params)
	if s.Partition != PartitionRows || s.Validate() != nil || s.Canonical()["partition"] != "rows" {
		t.Fatalf("partition rows: %+v %v", s, s.Canonical())
	}
	if rows.Digest() == held.Digest() {
		t.Error("partition: rows is the same job as partition: files")
	}
	files := []string{"a", "b"}
	for i := range 2 {
		if got, err := s.WorkerInputFiles("train", files, i); err != nil || len(got) != 2 {
			t.Errorf("worker %d of a row partition decrypts %v (%v), want every file", i, got, err)
		}
	}
	if _, err := s.WorkerInputFiles("train", files, 2); err == nil {
		t.Error("worker 2 of 2 given files")
	}
}

func TestWorkerRows(t *testing.T) {
	next := 0
	for i := range 3 {
		lo, hi, err := WorkerRows(10, i, 3)
		if err != nil || lo != next || hi <= lo {
			t.Fatalf("worker %d: [%d, %d) %v", i, lo, hi, err)
		}
		next = hi
	}
	if next != 10 {
		t.Fatalf("blocks end at %d", next)
	}
	if _, _, err := WorkerRows(1, 0, 2); err == nil || !strings.Contains(err.Error(), "1 row(s) for 2 workers") {
		t.Errorf("fewer rows than workers: %v", err)
	}
}
