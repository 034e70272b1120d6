package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/examples/data"
	"github.com/ppml/ppml/internal/buildtest"
	"github.com/ppml/ppml/policy"
)

// TestMain lets the test binary play the demo job's program: the demo runs
// its own executable as `EXE demo aggregate`, which in a test is this binary.
// The jobs run in ppml-run, built once for these tests and found through
// $PPML_RUN as the demo would find it.
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "demo" && os.Args[2] == "aggregate" {
		if err := AggregateCommand(os.Args[3:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(buildtest.Main(m, buildtest.Runtime()))
}

// countByDiagnosis counts visits per diagnosis in the bundled dataset with
// a plain line split, independently of Aggregate.
func countByDiagnosis(t *testing.T) map[string]int {
	t.Helper()
	counts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data.PatientsCSV))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) != 7 {
			t.Fatalf("dataset line %q: %d fields", sc.Text(), len(f))
		}
		counts[f[5]]++
	}
	return counts
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	sum, err := Run(ctx, Config{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK {
		t.Fatalf("demo failed:\n%s", out.String())
	}
	if len(sum.Steps) != 11 {
		t.Fatalf("%d steps, want 11", len(sum.Steps))
	}
	for _, s := range sum.Steps {
		if !s.OK || s.Skipped || s.Error != "" {
			t.Errorf("step %d: ok=%v skipped=%v error=%q", s.N, s.OK, s.Skipped, s.Error)
		}
	}
	if got := strings.Count(out.String(), "✓ step"); got != 11 {
		t.Errorf("%d ✓ lines, want 11", got)
	}
	if strings.Contains(out.String(), "✗") {
		t.Error("the walk-through shows a ✗")
	}

	// The refusal: the right key, for the job digest, of the modified job.
	if sum.Refusal == nil || sum.Refusal.Rule != policy.RuleJob || !strings.Contains(sum.Refusal.Key, KeyName) {
		t.Fatalf("refusal %+v, want rule %s for %s", sum.Refusal, policy.RuleJob, KeyName)
	}
	if sum.ModifiedDigest == "" || sum.ModifiedDigest == sum.JobDigest {
		t.Fatalf("modified digest %q, approved %q", sum.ModifiedDigest, sum.JobDigest)
	}
	if d := sum.Denial; d == nil || d.Rule != policy.RuleJob || "sha256:"+d.JobDigest.String() != sum.ModifiedDigest || d.Decision != "deny" {
		t.Fatalf("denial entry %+v", sum.Denial)
	}
	r := sum.Release
	if r == nil || r.Type != "release" || r.Key != KeyName || r.Platform != "sim" || !r.Insecure ||
		r.Measurement.String() != sum.Measurement || "sha256:"+r.JobDigest.String() != sum.JobDigest {
		t.Fatalf("release entry %+v", r)
	}
	// The measurement the policy pinned and the release recorded is the
	// runtime's own, as `ppml-run version` reports it to an owner.
	vout, err := exec.Command(sum.Runtime, "version", "--json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", sum.Runtime, err)
	}
	var v struct {
		Engines        []string `json:"engines"`
		SimMeasurement string   `json:"sim_measurement"`
	}
	if err := json.Unmarshal(vout, &v); err != nil || v.SimMeasurement != sum.Measurement || strings.Join(v.Engines, ",") != "dl,exec,ml,serve,sql,stream" {
		t.Errorf("ppml-run version %s (%v): want sim_measurement %s and engines dl, exec, ml, serve, sql, stream", vout, err, sum.Measurement)
	}
	if r.Index >= sum.Denial.Index {
		t.Errorf("release entry %d is not before the denial %d", r.Index, sum.Denial.Index)
	}

	checkOutputKeys(t, sum)

	// The result, against an independent count of the dataset.
	counts := countByDiagnosis(t)
	lines := strings.Split(strings.TrimSpace(sum.Result), "\n")
	if lines[0] != ResultHeader {
		t.Fatalf("result header %q", lines[0])
	}
	if len(lines)-1 != len(counts) {
		t.Fatalf("result has %d diagnoses, the dataset %d:\n%s", len(lines)-1, len(counts), sum.Result)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		n, err := strconv.Atoi(f[1])
		if err != nil || counts[f[0]] != n {
			t.Errorf("result line %q: dataset has %d visits for %q", l, counts[f[0]], f[0])
		}
	}
	if strings.Contains(sum.Result, "canary") {
		t.Error("the canary's diagnosis was not suppressed")
	}

	checkSQL(t, sum, counts)
	checkTrain(t, sum)
	checkDL(t, sum)

	// Nothing left behind.
	if sum.Scan == nil || !sum.Scan.Removed || len(sum.Scan.Leftovers) > 0 || len(sum.Scan.Files) != len(expected) {
		t.Fatalf("scan %+v", sum.Scan)
	}
	for _, f := range sum.Scan.Files {
		if f.Kind != expected[f.Path] {
			t.Errorf("%s: kind %q", f.Path, f.Kind)
		}
	}
	if sum.WorkDir != "" {
		t.Errorf("work dir %q reported though not kept", sum.WorkDir)
	}
}

func TestDemoKeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kept")
	sum, err := Run(context.Background(), Config{KeepDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK || sum.WorkDir != dir || sum.Scan.Removed {
		t.Fatalf("ok=%v workdir=%q removed=%v", sum.OK, sum.WorkDir, sum.Scan.Removed)
	}
	// The kept directory is what the scan listed: ciphertext is ciphertext.
	ct, err := os.ReadFile(filepath.Join(dir, "patients.csv.ppml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ct, []byte("PPMLENV")) || bytes.Contains(ct, []byte("Ines Moreau")) {
		t.Error("patients.csv.ppml is not an envelope without plaintext")
	}
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != len(expected) {
		t.Errorf("kept %d files, want %d", n, len(expected))
	}
	// A non-empty directory is refused before anything starts.
	if _, err := Run(context.Background(), Config{KeepDir: dir}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty --keep: %v", err)
	}
}

// A job whose program fails: that step and the ones after it fail or are
// skipped, the final scan still cleans up, and the summary says not OK.
func TestDemoFailingStep(t *testing.T) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), Config{Out: &out, Executable: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK {
		t.Fatal("demo with a failing program passed")
	}
	st := sum.Steps
	if len(st) != 11 || !st[2].OK || st[3].OK || !strings.Contains(st[3].Error, "exited with status 1") {
		t.Fatalf("steps: %+v", st)
	}
	for _, s := range st[4:9] {
		if !s.Skipped || s.OK {
			t.Errorf("step %d after the failure: ok=%v skipped=%v", s.N, s.OK, s.Skipped)
		}
	}
	if !st[10].OK || !sum.Scan.Removed {
		t.Errorf("final step: ok=%v error=%q", st[10].OK, st[10].Error)
	}
	if sum.SQL != nil || sum.Train != nil || sum.DL != nil {
		t.Error("skipped engine steps reported results")
	}
	if !strings.Contains(out.String(), "✗") || !strings.Contains(out.String(), "FAILED") {
		t.Errorf("the walk-through does not show the failure:\n%s", out.String())
	}
}

// The built binary's `ppml demo --json`, once, as `make demo` runs it.
func TestBinaryDemoJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ppml binary")
	}
	bin := filepath.Join(t.TempDir(), "ppml")
	build := exec.Command("go", "build", "-o", bin, "github.com/ppml/ppml/cmd/ppml")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "demo", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) || err != nil {
		t.Fatalf("ppml demo --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var sum Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if !sum.OK || len(sum.Steps) != 11 || sum.Refusal == nil || sum.Refusal.Rule != policy.RuleJob {
		t.Fatalf("summary: ok=%v steps=%d refusal=%+v", sum.OK, len(sum.Steps), sum.Refusal)
	}
	for _, s := range sum.Steps {
		if !s.OK {
			t.Errorf("step %d: %s", s.N, s.Error)
		}
	}
	if sum.Measurement == "" || sum.Release == nil || sum.Release.Measurement.String() != sum.Measurement {
		t.Errorf("the release entry does not name the binary's measurement %s", sum.Measurement)
	}
	checkSQL(t, &sum, countByDiagnosis(t))
	checkTrain(t, &sum)
	checkDL(t, &sum)
	checkOutputKeys(t, &sum)
}

// checkOutputKeys: every job output was written under the results key with
// a data key issued in the job's attested release (an output_key entry per
// approved job, to the runner), the owner decrypted each output through the
// key service (a decrypt entry per output, by another token than the
// runner's, after the output_key entries), and the refused job got no key:
// both keys were denied.
func checkOutputKeys(t *testing.T, sum *Summary) {
	t.Helper()
	if sum.SQL == nil || sum.Train == nil || sum.DL == nil || sum.Release == nil {
		t.Fatal("the summary lacks the SQL, training or deep-learning step or the release entry")
	}
	want := map[string]bool{entryHex(sum.JobDigest): true, entryHex(sum.SQL.JobDigest): true, entryHex(sum.Train.JobDigest): true, entryHex(sum.DL.JobDigest): true}
	if len(sum.OutputKeys) != 4 {
		t.Fatalf("%d output_key entries, want 4 (one per job)", len(sum.OutputKeys))
	}
	var last uint64
	for _, e := range sum.OutputKeys {
		if e.Type != "output_key" || e.Key != ResultKeyName || e.Tenant != OwnerTenant || e.Decision != "allow" ||
			e.Actor != sum.Release.Actor || e.Platform != "sim" || !e.Insecure || e.Measurement.String() != sum.Measurement {
			t.Errorf("output_key entry %+v", e)
		}
		if !want[e.JobDigest.String()] {
			t.Errorf("output_key entry %d for job %s, not one of the approved jobs (or twice)", e.Index, e.JobDigest)
		}
		delete(want, e.JobDigest.String())
		last = max(last, e.Index)
	}
	if len(sum.Decrypts) != 4 {
		t.Fatalf("%d decrypt entries, want 4 (one per output)", len(sum.Decrypts))
	}
	for i, d := range sum.Decrypts {
		if d.Type != "decrypt" || d.Key != ResultKeyName || d.Tenant != OwnerTenant || d.Decision != "allow" || d.Actor == "" || d.Actor == sum.Release.Actor {
			t.Errorf("decrypt entry %+v", d)
		}
		if i > 0 && d.Index <= sum.Decrypts[i-1].Index {
			t.Errorf("decrypt entries out of order: %d after %d", d.Index, sum.Decrypts[i-1].Index)
		}
	}
	if first := sum.Decrypts[0].Index; first <= sum.OutputKeys[0].Index {
		t.Errorf("the first decrypt (#%d) precedes the first output_key entry (#%d)", first, sum.OutputKeys[0].Index)
	}
	if sum.Denial == nil || sum.Denial.Index <= last {
		t.Errorf("the denial %+v does not follow the output_key entries", sum.Denial)
	}
	if d := sum.OutputDenial; d == nil || d.Key != ResultKeyName || d.Rule != policy.RuleJob || d.Decision != "deny" || entryHex(sum.ModifiedDigest) != d.JobDigest.String() {
		t.Errorf("output key denial %+v", sum.OutputDenial)
	}
}

func entryHex(d string) string { return strings.TrimPrefix(d, "sha256:") }

// checkSQL: the SQL step's decrypted result against an independent count
// of the bundled dataset (every diagnosis has at least 5 visits; the
// canary's single visit is suppressed).
func checkSQL(t *testing.T, sum *Summary, counts map[string]int) {
	t.Helper()
	if sum.SQL == nil || sum.SQL.JobDigest == "" || sum.SQL.JobDigest == sum.JobDigest {
		t.Fatalf("SQL step %+v (exec job %s)", sum.SQL, sum.JobDigest)
	}
	lines := strings.Split(strings.TrimSpace(sum.SQL.Result), "\n")
	if lines[0] != SQLResultHeader || len(lines)-1 != len(counts) {
		t.Fatalf("SQL result has header %q and %d groups, the dataset %d diagnoses:\n%s", lines[0], len(lines)-1, len(counts), sum.SQL.Result)
	}
	prev := 1 << 30
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		n, err := strconv.Atoi(f[1])
		if err != nil || counts[f[0]] != n || n < DefaultMinGroup {
			t.Errorf("SQL result line %q: dataset has %d visits for %q", l, counts[f[0]], f[0])
		}
		if n > prev {
			t.Errorf("SQL result not ordered by visits: %q", l)
		}
		prev = n
	}
	if strings.Contains(sum.SQL.Result, "canary") {
		t.Error("the SQL job did not suppress the canary's diagnosis")
	}
}

// checkTrain: the model the owner decrypted names the approved training
// job and scores well on its held-out rows.
func checkTrain(t *testing.T, sum *Summary) {
	t.Helper()
	tr := sum.Train
	if tr == nil || tr.TrainingJobDigest != tr.JobDigest || tr.JobDigest == sum.JobDigest || (sum.SQL != nil && tr.JobDigest == sum.SQL.JobDigest) {
		t.Fatalf("training step %+v", tr)
	}
	if tr.Algorithm != "xgboost" || tr.Objective != "binary" || tr.Label != "target" || tr.Features != 30 {
		t.Errorf("model %+v", tr)
	}
	m := tr.Metrics
	if m == nil || m.Classification == nil || m.TestRows+m.TrainRows != 569 || m.TestRows < 100 || m.TestRows > 130 {
		t.Fatalf("metrics %+v", m)
	}
	c := m.Classification
	if c.Accuracy < MinAccuracy || c.Accuracy > 1 || c.AUC == nil || *c.AUC < 0.95 {
		t.Errorf("classification %+v", c)
	}
	if o := tr.OwnerEvaluation; o == nil || o.Rows != 569 || o.Accuracy < c.Accuracy-0.05 || o.Accuracy > 1 {
		t.Errorf("owner's evaluation %+v (test accuracy %.3f)", o, c.Accuracy)
	}
	n := 0
	for _, r := range c.Confusion {
		for _, v := range r {
			n += v
		}
	}
	if n != m.TestRows {
		t.Errorf("confusion matrix counts %d rows, %d tested", n, m.TestRows)
	}
}

// checkDL: the network the dl step trained names its job, scores on its held-out rows, and
// the owner's own forward pass agrees on every row.
func checkDL(t *testing.T, sum *Summary) {
	t.Helper()
	d := sum.DL
	if d == nil || d.TrainingJobDigest != d.JobDigest || d.JobDigest == sum.JobDigest || d.JobDigest == sum.Train.JobDigest {
		t.Fatalf("deep-learning step %+v", d)
	}
	if d.Architecture.Kind != "mlp" || d.Architecture.Inputs != 30 || d.Features != 30 || d.Label != "target" || len(d.EpochLoss) != dlEpochs {
		t.Errorf("network %+v", d)
	}
	m := d.Metrics
	if m == nil || m.Classification == nil || m.TestRows < 100 || m.TestRows > 130 {
		t.Fatalf("metrics %+v", m)
	}
	if a := m.Classification.Accuracy; a < MinAccuracy || a > 1 || d.OwnerRows != 569 || d.OwnerAccuracy < a-0.05 || d.OwnerAccuracy > 1 {
		t.Errorf("test accuracy %.3f, the owner's %.3f on %d rows", a, d.OwnerAccuracy, d.OwnerRows)
	}
	if !(d.EpochLoss[len(d.EpochLoss)-1] < d.EpochLoss[0]) {
		t.Errorf("epoch losses %v", d.EpochLoss)
	}
}

func TestBreastCancerDataset(t *testing.T) {
	if got := fmt.Sprintf("%x", sha256.Sum256(BreastCancerCSV)); got != "432ff316e7bfb60b70a275064b4401315cc39f09c9099d031013a23647e98687" {
		t.Fatalf("datasets/breast_cancer.csv has SHA-256 %s, not the file scripts/datasets.sh pins", got)
	}
}

func TestSameSQLResult(t *testing.T) {
	want := []byte(SQLResultHeader + "\nflu,7,5,20.01\nasthma,5,4,100.00\n")
	for _, c := range []struct {
		got, err string
	}{
		{SQLResultHeader + "\nflu,7,5,20.01\nasthma,5,4,100.0\n", ""},
		{SQLResultHeader + "\nflu,7,5,20.0\nasthma,5,4,100\n", ""},
		{SQLResultHeader + "\nflu,7,5,20.01\n", "1 groups"},
		{SQLResultHeader + "\nflu,7,4,20.01\nasthma,5,4,100.00\n", "line 2"},
		{SQLResultHeader + "\nasthma,5,4,100.00\nflu,7,5,20.01\n", "line 2"},
		{SQLResultHeader + "\nflu,7,5,20.01\nasthma,5,4,100.03\n", "mean cost"},
		{"diagnosis,visits\nflu,7\nasthma,5\n", "header"},
		{SQLResultHeader + "\nflu,7,5,20.01\nasthma,5,4,\"x\n", "not CSV"},
	} {
		err := sameSQLResult([]byte(c.got), want)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: error %v, want %q", c.got, err, c.err)
		}
	}
}

// FuzzSameSQLResult: the SQL job's output (written inside the TEE) is
// compared, never trusted: any bytes give nil or an error, never a panic,
// and only a result with the owner's groups and counts is accepted.
func FuzzSameSQLResult(f *testing.F) {
	want := []byte(SQLResultHeader + "\nflu,7,5,20.01\nasthma,5,4,100.00\n")
	f.Add(want)
	f.Add([]byte(SQLResultHeader + "\nflu,7,5,20.0\nasthma,5,4,100\n"))
	f.Add([]byte(SQLResultHeader + "\nflu,7\n\"a\nb\",1,2,NaN\n"))
	f.Fuzz(func(t *testing.T, got []byte) {
		if sameSQLResult(got, want) != nil {
			return
		}
		rs, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
		if err != nil || len(rs) != 3 || strings.Join(rs[1][:3], ",") != "flu,7,5" || strings.Join(rs[2][:3], ",") != "asthma,5,4" {
			t.Fatalf("accepted %q", got)
		}
	})
}
