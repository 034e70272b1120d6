package demo

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/memfd"
	"github.com/ppml/ppml/ml/metrics"
)

// The sql and ml engines run inside the runtime process (no program of
// their own), so the measurement the policy pins covers them too.

// BreastCancerCSV is the Wisconsin diagnostic breast cancer data
// (datasets/README.md): a real public dataset with numeric features and a
// 0/1 label, which the patients CSV does not have. Embedded so that the
// training step needs nothing but the binary.
//
//go:embed datasets/breast_cancer.csv
var BreastCancerCSV []byte

// Names of the engine jobs' outputs and the training data's label.
const (
	sqlOutput   = "diagnoses"
	modelOutput = "model"
	trainLabel  = "target"
	// MinAccuracy is the least test accuracy the demo accepts from the
	// trained classifier: well below what XGBoost reaches on this data
	// (about 0.95), well above guessing the majority class (0.63).
	MinAccuracy = 0.9
)

// SQLResultHeader is the first line of the SQL job's result.
const SQLResultHeader = "diagnosis,visits,patients,mean_cost_eur"

// sqlJob is the sql engine's demo job: the same aggregate as the exec job,
// written as one GROUP BY query with the same minimum group size. The
// query is inline, so it is part of the job digest the policy allows.
func sqlJob() *Job {
	return &Job{
		Name: "patients-by-diagnosis-sql",
		File: "sql-job.yaml",
		Own:  true,
		Manifest: func(je JobEnv) ([]byte, error) {
			return []byte(fmt.Sprintf(`# The ppml demo's SQL job: visits per diagnosis, groups under %[5]d suppressed.
name: patients-by-diagnosis-sql
engine: %[1]s
inputs:
  %[2]s:
    path: patients.csv.ppml
    key: %[3]s
outputs:
  %[6]s:
    path: out/diagnoses.csv.ppml
    key: %[4]s
    content_type: text/csv
parameters:
  outputs:
    %[6]s:
      format: csv
      query: |
        SELECT diagnosis,
               count(*) AS visits,
               count(DISTINCT patient_id) AS patients,
               round(avg(cost_eur), 2) AS mean_cost_eur
        FROM %[2]s
        GROUP BY diagnosis
        HAVING count(*) >= %[5]d
        ORDER BY visits DESC, diagnosis;
resources:
  memory: 256MiB
  threads: 1
`, sqlspec.Name, InputName, je.InputKey, je.OutputKey, DefaultMinGroup, sqlOutput)), nil
		},
		Expect: func(dataset []byte) ([]byte, error) {
			a, err := Aggregate(bytes.NewReader(dataset), DefaultMinGroup)
			if err != nil {
				return nil, err
			}
			var buf bytes.Buffer
			cw := csv.NewWriter(&buf)
			cw.Write(strings.Split(SQLResultHeader, ","))
			for _, g := range a.Groups {
				cw.Write([]string{g.Diagnosis, strconv.Itoa(g.Visits), strconv.Itoa(g.Patients), strconv.FormatFloat(g.MeanCost, 'f', 2, 64)})
			}
			cw.Flush()
			return buf.Bytes(), cw.Error()
		},
		Verify: sameSQLResult,
	}
}

// sameSQLResult compares the SQL job's CSV with the owner's: same header,
// same groups in the same order, same counts, mean costs within a cent
// (DuckDB and Go may round a half cent differently and print numbers
// differently).
func sameSQLResult(got, want []byte) error {
	g, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
	if err != nil {
		return fmt.Errorf("the SQL result is not CSV: %w", err)
	}
	w, err := csv.NewReader(bytes.NewReader(want)).ReadAll()
	if err != nil {
		return err
	}
	if len(g) == 0 || strings.Join(g[0], ",") != SQLResultHeader {
		return fmt.Errorf("the SQL result's header is not %q", SQLResultHeader)
	}
	if len(g) != len(w) {
		return fmt.Errorf("the SQL result has %d groups, the owner's aggregate %d", len(g)-1, len(w)-1)
	}
	for i := 1; i < len(g); i++ {
		if len(g[i]) != 4 {
			return fmt.Errorf("SQL result line %d: %d fields, want 4", i+1, len(g[i]))
		}
		if g[i][0] != w[i][0] || g[i][1] != w[i][1] || g[i][2] != w[i][2] {
			return fmt.Errorf("SQL result line %d: %s with %s visits of %s patients, the owner's aggregate has %s with %s of %s",
				i+1, g[i][0], g[i][1], g[i][2], w[i][0], w[i][1], w[i][2])
		}
		gc, err1 := strconv.ParseFloat(g[i][3], 64)
		wc, err2 := strconv.ParseFloat(w[i][3], 64)
		if err1 != nil || err2 != nil || math.Abs(gc-wc) > 0.0101 {
			return fmt.Errorf("SQL result line %d (%s): mean cost %s, the owner's aggregate %s", i+1, g[i][0], g[i][3], w[i][3])
		}
	}
	return nil
}

// mlJob is the ml engine's demo job: XGBoost, one thread, trained on the
// encrypted breast cancer data; the model is the only output.
func mlJob() *Job {
	return &Job{
		Name:    "tumour-classifier",
		File:    "train-job.yaml",
		Own:     true,
		Dataset: "breast_cancer.csv.ppml",
		Manifest: func(je JobEnv) ([]byte, error) {
			return []byte(fmt.Sprintf(`# The ppml demo's training job: an XGBoost classifier (malignant or benign).
version: 1
name: tumour-classifier
engine: ml
inputs:
  train:
    path: breast_cancer.csv.ppml
    key: %[1]s
outputs:
  %[3]s:
    path: out/tumour.model.ppml
    key: %[2]s
    content_type: application/json
parameters:
  task: train
  algorithm: xgboost
  objective: binary
  label: %[4]s
  rounds: 20
  params: {max_depth: 3, eta: 0.3}
  test_fraction: 0.2
  seed: 42
resources:
  memory: 512MiB
  threads: 1
`, je.InputKey, je.OutputKey, modelOutput, trainLabel)), nil
		},
	}
}

// SQLStep is what the SQL step established.
type SQLStep struct {
	JobDigest string `json:"job_digest"`
	Result    string `json:"result"` // the decrypted CSV (aggregates only)
}

// TrainStep is what the training step established: the decrypted model's
// description (not the model itself).
type TrainStep struct {
	JobDigest string        `json:"job_digest"`
	Algorithm string        `json:"algorithm"`
	Objective string        `json:"objective"`
	Label     string        `json:"label"`
	Features  int           `json:"features"`
	Metrics   *ModelMetrics `json:"metrics"`
	// TrainingJobDigest is the digest the model records: the approved job.
	TrainingJobDigest string `json:"training_job_digest"`
	// OwnerEvaluation is the owner's own scoring of the decrypted model on
	// every row of the plaintext (training rows included).
	OwnerEvaluation *metrics.Classification `json:"owner_evaluation"`
}

// ModelMetrics are a model's scores on its held-out test rows, as the
// model file records them (docs/formats/ml-model.md).
type ModelMetrics struct {
	TestRows       int                     `json:"test_rows"`
	TrainRows      int                     `json:"train_rows"`
	TestFraction   float64                 `json:"test_fraction"`
	Seed           uint64                  `json:"seed"`
	Regression     *metrics.Regression     `json:"regression,omitempty"`
	Classification *metrics.Classification `json:"classification,omitempty"`
}

// modelInfo is what the owner reads of the decrypted model file's wrapper
// (docs/formats/ml-model.md): its description and recorded metrics. The
// model itself is validated and used by the runtime's engine when the
// owner scores it (ownerEvaluate); the ppml CLI links no engine.
type modelInfo struct {
	Format            string        `json:"format"`
	Algorithm         string        `json:"algorithm"`
	Objective         string        `json:"objective"`
	Features          []string      `json:"features"`
	Label             string        `json:"label"`
	Metrics           *ModelMetrics `json:"metrics"`
	TrainingJobDigest string        `json:"training_job_digest"`
}

// evaluation is what `ppml-run ml evaluate --json` prints.
type evaluation struct {
	Task    string        `json:"task"`
	Metrics *ModelMetrics `json:"metrics"`
}

// ownerEvaluate scores the decrypted model on the owner's plaintext with
// the engine, in ppml-run: the model and the data reach it as sealed
// in-memory files (descriptors 3 and 4), never as files on disk.
func (e *env) ownerEvaluate(ctx context.Context, model, data []byte) (*evaluation, error) {
	var files []*os.File
	for _, b := range []struct {
		name string
		data []byte
	}{{"demo-model", model}, {"demo-data", data}} {
		m, err := memfd.New(b.name)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		if _, err := m.OSFile().Write(b.data); err != nil {
			return nil, err
		}
		if err := m.Seal(); err != nil {
			return nil, err
		}
		files = append(files, m.OSFile())
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.runtime, "ml", "evaluate", "--model", "/proc/self/fd/3", "--format", "csv", "--threads", "1", "--json", "/proc/self/fd/4")
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ppml-run ml evaluate: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var ev evaluation
	if err := json.Unmarshal(stdout.Bytes(), &ev); err != nil {
		return nil, fmt.Errorf("ppml-run ml evaluate: %w", err)
	}
	return &ev, nil
}

func (e *env) jobNamed(name string) (*Job, error) {
	for _, j := range e.jobs {
		if j.Name == name {
			return j, nil
		}
	}
	return nil, fmt.Errorf("no demo job %s", name)
}

var epochLine = regexp.MustCompile(`engine: epoch (\d+) of (\d+) done`)

// runOwn runs a job that has a step of its own and returns its output.
func (e *env) runOwn(ctx context.Context, st *Step, j *Job) ([]byte, error) {
	run, err := e.launchIn(ctx, e.runtimeOf(j), j.path)
	for _, l := range run.log {
		// A training job's progress: only the last epoch's line.
		if m := epochLine.FindStringSubmatch(l); m != nil && m[1] != m[2] {
			continue
		}
		st.detail("%s", l)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", j.Name, err)
	}
	if run.res.Digest != j.digest {
		return nil, fmt.Errorf("job %s: the launcher ran digest %s, the owner approved %s", j.Name, run.res.Digest, j.digest)
	}
	if len(run.res.Outputs) != 1 {
		return nil, fmt.Errorf("job %s: %d outputs written, want 1", j.Name, len(run.res.Outputs))
	}
	j.outputs = run.res.Outputs
	// The release for this job is on the owner's audit trail too.
	rel, err := e.findEntry(ctx, KeyName, audit.TypeRelease, j.digest)
	if err != nil {
		return nil, err
	}
	if rel.Decision != audit.Allow || rel.Actor != e.runnerTokenID || !bytes.Equal(rel.Measurement, e.measurementOf(j)) {
		return nil, fmt.Errorf("audit entry %d for job %s: decision %s, actor %s, measurement %s", rel.Index, j.Name, rel.Decision, rel.Actor, rel.Measurement)
	}
	st.detail("audit entry #%d: %s@%d released to token %s for this job (sha256:%s…), measurement %s…", rel.Index, rel.Key, rel.KeyVersion, rel.Actor, rel.JobDigest.String()[:16], rel.Measurement.String()[:24])
	st.fact("release_entry", fmt.Sprint(rel.Index))
	ok, err := e.outputKeyEntry(ctx, j)
	if err != nil {
		return nil, err
	}
	st.detail("audit entry #%d: output_key %s@%d issued to token %s for this job's output, in the same release", ok.Index, ok.Key, ok.KeyVersion, ok.Actor)
	st.fact("output_key_entry", fmt.Sprint(ok.Index))
	plain, d, err := e.decryptOutput(ctx, j.outputs[0])
	if err != nil {
		return nil, err
	}
	st.detail("%s, decrypted in memory through the key service: audit entry #%d, decrypt of %s@%d by the owner's token %s", e.rel(j.outputs[0]), d.Index, d.Key, d.KeyVersion, d.Actor)
	if m := e.canary.find(plain); m != "" {
		clear(plain)
		return nil, fmt.Errorf("the result contains the planted marker %q: suppression failed", m)
	}
	return plain, nil
}

// Step 7.
func (e *env) sqlStep(ctx context.Context, st *Step) error {
	j, err := e.jobNamed("patients-by-diagnosis-sql")
	if err != nil {
		return err
	}
	st.detail("job %s (sql engine, digest %s…), allowed by the same key policies", e.rel(j.path), j.digest[:23])
	plain, err := e.runOwn(ctx, st, j)
	if err != nil {
		return err
	}
	st.detail("the decrypted result:")
	for _, l := range strings.Split(strings.TrimRight(string(plain), "\n"), "\n") {
		st.detail("  | %s", l)
	}
	if err := j.Verify(plain, j.want); err != nil {
		return fmt.Errorf("job %s: %w", j.Name, err)
	}
	e.sum.SQL = &SQLStep{JobDigest: j.digest, Result: string(plain)}
	st.detail("it equals the GROUP BY the owner computes in Go from the plaintext (counts exactly, mean costs to the cent); the canary's one-visit diagnosis is suppressed by HAVING count(*) >= %d", DefaultMinGroup)
	st.fact("sql_job_digest", j.digest)
	return nil
}

// Step 8.
func (e *env) trainStep(ctx context.Context, st *Step) error {
	j, err := e.jobNamed("tumour-classifier")
	if err != nil {
		return err
	}
	path := filepath.Join(e.dir, j.Dataset)
	n, err := e.encryptFile(ctx, BreastCancerCSV, path)
	if err != nil {
		return err
	}
	rows := bytes.Count(BreastCancerCSV, []byte("\n")) - 1
	st.detail("the owner encrypts the bundled Wisconsin breast cancer data (%d tumours, 30 features, label %s: 0 malignant, 1 benign) → %s (%d B) under %s", rows, trainLabel, e.rel(path), n, e.keyRef)
	st.detail("job %s (ml engine, digest %s…): XGBoost, binary, 20 rounds, depth 3, one thread, 20%% of the rows held out", e.rel(j.path), j.digest[:23])
	plain, err := e.runOwn(ctx, st, j)
	if err != nil {
		return err
	}
	defer clear(plain)
	var m modelInfo
	if err := json.Unmarshal(plain, &m); err != nil || m.Format != "ppml-model" {
		return fmt.Errorf("the decrypted model is not a ppml model (format %q): %v", m.Format, err)
	}
	if m.TrainingJobDigest != j.digest {
		return fmt.Errorf("the model records training job %q, the owner approved %s", m.TrainingJobDigest, j.digest)
	}
	if m.Algorithm != "xgboost" || m.Objective != "binary" || m.Label != trainLabel || len(m.Features) != 30 {
		return fmt.Errorf("the model is %s %s on %d features with label %s, want xgboost binary on 30 with %s", m.Algorithm, m.Objective, len(m.Features), m.Label, trainLabel)
	}
	mt := m.Metrics
	if mt == nil || mt.Classification == nil || mt.TestRows+mt.TrainRows != rows || mt.TestRows == 0 {
		return errors.New("the model records no classification metrics over the held-out rows")
	}
	c := mt.Classification
	if c.Accuracy < MinAccuracy {
		return fmt.Errorf("test accuracy %.3f, want at least %.2f", c.Accuracy, MinAccuracy)
	}
	// The owner uses the model: the same engine code scores it outside
	// the TEE on the plaintext the owner holds (all rows, the training rows
	// included), which shows the decrypted model is a working classifier.
	ev, err := e.ownerEvaluate(ctx, plain, BreastCancerCSV)
	if err != nil {
		return fmt.Errorf("the owner scores the model on the plaintext: %w", err)
	}
	if ev.Metrics == nil || ev.Metrics.Classification == nil || ev.Metrics.TestRows != rows {
		return errors.New("the owner's evaluation of the model gave no classification metrics over every row")
	}
	all := ev.Metrics.Classification
	if all.Accuracy < MinAccuracy {
		return fmt.Errorf("the owner's evaluation: accuracy %.3f on all %d rows, want at least %.2f", all.Accuracy, rows, MinAccuracy)
	}
	e.sum.Train = &TrainStep{JobDigest: j.digest, Algorithm: m.Algorithm, Objective: m.Objective, Label: m.Label,
		Features: len(m.Features), Metrics: mt, TrainingJobDigest: m.TrainingJobDigest, OwnerEvaluation: all}
	st.detail("the decrypted model: a ppml model (%s, %s, %d features, label %s)", m.Algorithm, m.Objective, len(m.Features), m.Label)
	st.detail("recorded training job digest %s — the job the policy approved", m.TrainingJobDigest)
	auc := "n/a"
	if c.AUC != nil {
		auc = fmt.Sprintf("%.4f", *c.AUC)
	}
	cm, _ := json.Marshal(c.Confusion)
	st.detail("metrics on %d held-out tumours (trained on %d): accuracy %.4f, AUC %s, log-loss %.4f, confusion [true][predicted] %s", mt.TestRows, mt.TrainRows, c.Accuracy, auc, c.LogLoss, cm)
	st.detail("the owner scores the decrypted model on its plaintext copy of all %d rows (training rows included) with the same engine code (ppml-run ml evaluate, model and data in memory): accuracy %.4f", ev.Metrics.TestRows, all.Accuracy)
	st.fact("train_job_digest", j.digest)
	st.fact("accuracy", strconv.FormatFloat(c.Accuracy, 'f', 4, 64))
	return nil
}

// decryptOutput reads an output envelope as the owner: the data key in
// its header is wrapped under the results key, which only the key service
// holds, so the owner's token unwraps it there (POST /v1/decrypt, what
// `ppml decrypt --key kms://…` does) and the service audits that decrypt.
// It returns the plaintext and the decrypt entry.
func (e *env) decryptOutput(ctx context.Context, path string) ([]byte, *audit.Entry, error) {
	kr := &client.EnvelopeKey{Client: e.owner, Ref: e.resultRef, Ctx: ctx}
	f, err := envelope.OpenFile(path, kr)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt %s: %w", e.rel(path), err)
	}
	defer f.Close()
	if ref := f.Header().KeyRef; ref.Scheme != envelope.SchemeKMS || ref.Name != ResultKeyName {
		return nil, nil, fmt.Errorf("%s is encrypted under %s, want %s", e.rel(path), ref, e.resultRef)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxResult)); err != nil {
		return nil, nil, fmt.Errorf("decrypt %s: %w", e.rel(path), err)
	}
	// The unwrap is the newest entry of the results key's trail: a decrypt
	// by the owner's token (nothing else uses the key meanwhile).
	es, err := e.owner.AuditList(ctx, ResultKeyName, 0, 1000)
	if err != nil {
		clear(buf.Bytes())
		return nil, nil, fmt.Errorf("audit list: %w", err)
	}
	if len(es) == 0 {
		clear(buf.Bytes())
		return nil, nil, fmt.Errorf("the audit trail of %s is empty after the owner's decrypt", ResultKeyName)
	}
	d := &es[len(es)-1]
	if d.Type != audit.TypeDecrypt || d.Decision != audit.Allow || d.Actor != e.ownerTokenID || d.Key != ResultKeyName {
		clear(buf.Bytes())
		return nil, nil, fmt.Errorf("the newest audit entry of %s is %s %s by %s, want the owner's decrypt", ResultKeyName, d.Decision, d.Type, d.Actor)
	}
	e.sum.Decrypts = append(e.sum.Decrypts, d)
	return buf.Bytes(), d, nil
}
