package mlengine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/internal/proctest"
	"github.com/ppml/ppml/internal/runcli"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/kmstest"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/split"
)

// runAsPPMLRun makes this test binary act as ppml-run (with the ml engine
// linked, as cmd/ppml-run links it): the distributed tests start their
// workers as separate processes of it.
const runAsPPMLRun = "PPML_ML_TEST_AS_PPML_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsPPMLRun) == "1" {
		os.Exit(runcli.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// distTable is a binary classification table whose features take few
// distinct values, so that XGBoost's quantile cuts are exact whether one
// worker sketches all rows or several merge their sketches: the
// distributed model then equals the single-process one.
func distTable(rows int) [][]string {
	r := rand.New(rand.NewPCG(3, 5))
	const cols = 6
	out := [][]string{{"a", "b", "c", "d", "e", "f", "y"}}
	for range rows {
		row := make([]string, 0, cols+1)
		s := 0.0
		for j := range cols {
			v := r.IntN(16)
			row = append(row, fmt.Sprint(v))
			s += float64(v) * float64(j%3-1)
		}
		y := "0"
		if s+r.NormFloat64()*3 > 0 {
			y = "1"
		}
		out = append(out, append(row, y))
	}
	return out
}

// distJob is a workspace for distributed train jobs: the training table
// split into encrypted files under train/, an owner key, and a key service
// on 127.0.0.1 that trusts this test binary as a simulated TEE.
type distJob struct {
	dir      string
	ownerKey string
	key      *envelope.LocalKey
	kms      *kmstest.Server
	sim      *kmstest.Sim
	owner    interface {
		SetCertPolicy(ctx context.Context, name string, doc []byte) (*api.CertPolicy, error)
	}
	runnerToken string
}

func newDistJob(t *testing.T, rows, files int) *distJob {
	t.Helper()
	dir := t.TempDir()
	d := &distJob{dir: dir, ownerKey: filepath.Join(dir, "owner.key")}
	k, err := keyfile.Generate(d.ownerKey, false)
	if err != nil {
		t.Fatal(err)
	}
	d.key = k.LocalKey
	table := distTable(rows)
	header, body := table[0], table[1:]
	for _, sub := range []string{"train", "out"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		var b bytes.Buffer
		b.WriteString(strings.Join(header, ",") + "\n")
		for _, row := range body[len(body)*i/files : len(body)*(i+1)/files] {
			b.WriteString(strings.Join(row, ",") + "\n")
		}
		envelopetest.Encrypt(t, filepath.Join(dir, "train", fmt.Sprintf("part-%05d.csv.ppml", i)), d.key, b.Bytes(), envelope.TypeCSV)
	}
	// The simulated TEE measures /proc/self/exe: this test binary, which
	// the worker processes run as ppml-run.
	if d.sim, err = kmstest.NewSim(filepath.Join(dir, "sim"), ""); err != nil {
		t.Fatal(err)
	}
	d.kms = kmstest.New(t, kmstest.Options{Sim: d.sim})
	ctx := context.Background()
	owner, _, err := d.kms.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	d.owner = owner
	_, tok, err := d.kms.Party(ctx, "jobs", api.RoleRunner)
	if err != nil {
		t.Fatal(err)
	}
	d.runnerToken = tok.Token
	return d
}

// manifest writes a train job reading train/ and returns its path and
// digest; extra goes into its parameters.
func (d *distJob) manifest(t *testing.T, name, extra string) (string, string) {
	t.Helper()
	return d.manifestFrom(t, name, "train/", extra)
}

// manifestFrom writes a train job reading input, with a report output; a
// test_fraction in extra replaces the default 0.
func (d *distJob) manifestFrom(t *testing.T, name, input, extra string) (string, string) {
	t.Helper()
	if !strings.Contains(extra, "test_fraction:") {
		extra = "  test_fraction: 0\n" + extra
	}
	doc := fmt.Sprintf(`version: 1
name: %s
engine: ml
inputs:
  train: %s
outputs:
  model: {path: out/%s.model.ppml, key: "file:owner.key"}
  report: {path: out/%s.report.ppml, key: "file:owner.key"}
parameters:
  task: train
  algorithm: xgboost
  objective: binary
  label: y
  params: {max_depth: 4, eta: 0.3}
  rounds: 8
%s`, name, input, name, name, extra)
	p := filepath.Join(d.dir, name+".yaml")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := job.Parse([]byte(doc), d.dir, specs.All)
	if err != nil {
		t.Fatal(err)
	}
	return p, m.DigestString()
}

// certPolicy lets the simulated TEE obtain worker certificates for the
// given job digests under alice/xgb.
func (d *distJob) certPolicy(t *testing.T, digests ...string) {
	t.Helper()
	doc := d.sim.Policy("jobs: [" + strings.Join(digests, ", ") + "]\ncertificate:\n  roles: [xgboost-worker]\n")
	if _, err := d.owner.SetCertPolicy(context.Background(), "alice/xgb", doc); err != nil {
		t.Fatal(err)
	}
}

// start starts worker index of a distributed job as a ppml-run process.
func (d *distJob) start(t *testing.T, manifest string, index int, peers []string, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	args := append([]string{"run", "--manifest", manifest, "--server", d.kms.URL, "--server-fingerprint", d.kms.Fingerprint,
		"--tee", "sim", "--key", d.ownerKey, "--worker-index", fmt.Sprint(index), "--peers", strings.Join(peers, ",")}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runAsPPMLRun+"=1", "PPML_SIM_DIR="+d.sim.Dir, "PPML_TOKEN="+d.runnerToken)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	proctest.Start(t, cmd)
	return cmd, &out
}

// freeAddrs returns n loopback addresses nobody listens on.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		defer ln.Close()
	}
	return addrs
}

func (d *distJob) model(t *testing.T, name string) *Model {
	t.Helper()
	m, err := DecodeModel(envelopetest.Decrypt(t, filepath.Join(d.dir, "out", name+".model.ppml"), d.key))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Two ppml-run processes train one distributed job from the same manifest:
// each decrypts only its block of the training files, obtains its
// certificate from the key service through the simulated TEE's evidence,
// and trains over attested tunnels. Worker 0 alone writes the model, which
// equals the model one process trains on the whole directory.
func TestDistributedTrainingProcesses(t *testing.T) {
	d := newDistJob(t, 2000, 4)
	single, _ := d.manifest(t, "single", "")
	keys, err := launcher.NewLocalKeys(d.ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runJob(single, launcher.Config{Keys: keys}); err != nil {
		t.Fatal(err)
	}
	dist, digest := d.manifest(t, "dist", "  workers: 2\n  certificate_policy: alice/xgb\n")
	d.certPolicy(t, digest)
	peers := freeAddrs(t, 2)
	cmds := make([]*exec.Cmd, 2)
	outs := make([]*bytes.Buffer, 2)
	for i := range 2 {
		cmds[i], outs[i] = d.start(t, dist, i, peers)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, outs[i])
		}
	}
	if t.Failed() {
		return
	}
	for i, want := range []string{"worker 0 of 2 trained on its 1000 rows", "worker 1 of 2 trained on its 1000 rows"} {
		if !strings.Contains(outs[i].String(), want) {
			t.Errorf("worker %d's log lacks %q:\n%s", i, want, outs[i])
		}
	}
	if !strings.Contains(outs[1].String(), "outputs are written by worker 0") {
		t.Errorf("worker 1's log:\n%s", outs[1])
	}
	got, want := d.model(t, "dist"), d.model(t, "single")
	if !bytes.Equal(got.Inner, want.Inner) {
		t.Fatal("the distributed model differs from the single-process model")
	}
	if got.TrainingJobDigest != digest {
		t.Errorf("model records job %s, want %s", got.TrainingJobDigest, digest)
	}
	// Each worker's certificate is on the audit log, under the job's policy.
	all, err := d.kms.Admin.AuditList(context.Background(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	issued := 0
	for _, e := range all {
		if string(e.Type) == "cert_issue" && e.Key == api.CertPolicyTrail+"alice/xgb" {
			issued++
		}
	}
	if issued != 2 {
		t.Errorf("%d certificates issued under alice/xgb, want 2", issued)
	}
	envelopetest.AssertNoMarker(t, d.dir, []byte(strings.Join(distTable(1)[1], ",")))
}

// A worker whose manifest differs (another job digest, though the
// certificate policy admits it too) obtains a certificate but cannot join:
// worker 0's tunnel refuses it, naming the check, and worker 0 fails when
// not every worker joined. No model is written.
func TestDistributedWorkerOfAnotherJobCannotJoin(t *testing.T) {
	d := newDistJob(t, 400, 2)
	dist, digest := d.manifest(t, "dist", "  workers: 2\n  certificate_policy: alice/xgb\n")
	other, otherDigest := d.manifest(t, "other", "  workers: 2\n  certificate_policy: alice/xgb\n  seed: 7\n")
	d.certPolicy(t, digest, otherDigest)
	peers := freeAddrs(t, 2)
	start := time.Now()
	c0, out0 := d.start(t, dist, 0, peers, "--join-timeout", "5s")
	// Worker 1 waits longer for worker 0's tunnel, which may take a while
	// to come up on a loaded machine.
	c1, out1 := d.start(t, other, 1, peers, "--join-timeout", "30s")
	err1 := c1.Wait()
	if err1 == nil || !strings.Contains(out1.String(), "job_digest") || !strings.Contains(out1.String(), peers[0]) {
		t.Errorf("a worker of another job: %v\n%s", err1, out1)
	}
	err0 := c0.Wait()
	if err0 == nil || !strings.Contains(out0.String(), "not every worker joined the collective within 5s") {
		t.Errorf("worker 0 without its peer: %v\n%s", err0, out0)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("took %s", d)
	}
	for _, name := range []string{"dist", "other"} {
		for _, out := range []string{".model.ppml", ".report.ppml"} {
			if _, err := os.Stat(filepath.Join(d.dir, "out", name+out)); !os.IsNotExist(err) {
				t.Errorf("%s%s written: %v", name, out, err)
			}
		}
	}
}

// The launcher refuses a distributed job without its worker's place, and a
// place for a job on one worker; a worker needs at least one file.
func TestDistributedPlaceChecks(t *testing.T) {
	d := newDistJob(t, 30, 1)
	dist, _ := d.manifest(t, "dist", "  workers: 2\n  certificate_policy: alice/xgb\n")
	single, _ := d.manifest(t, "single", "")
	keys, err := launcher.NewLocalKeys(d.ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		manifest string
		worker   *launcher.Worker
		want     string
	}{
		{dist, nil, "runs on 2 workers: give this worker's index"},
		{dist, &launcher.Worker{Index: 0, Peers: []string{"127.0.0.1:1"}}, "1 peer address(es) were given"},
		{dist, &launcher.Worker{Index: 2, Peers: []string{"127.0.0.1:1", "127.0.0.1:2"}}, "worker index 2"},
		{dist, &launcher.Worker{Index: 1, Peers: []string{"127.0.0.1:1", "127.0.0.1:2"}}, "1 file(s) for 2 workers"},
		{single, &launcher.Worker{Index: 0, Peers: []string{"127.0.0.1:1"}}, "runs on one worker"},
	} {
		_, err := runJob(c.manifest, launcher.Config{Keys: keys, Worker: c.worker})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", filepath.Base(c.manifest), c.worker, err, c.want)
		}
	}
}

// Input paths are not part of the job: a host can show each worker another
// directory. Workers shown different listings of the training input (here
// worker 1 gets an extra copy of a file, which would count its rows twice)
// refuse to train, every one of them, and no model is written.
func TestDistributedWorkersShownDifferentFiles(t *testing.T) {
	d := newDistJob(t, 400, 4)
	dist, digest := d.manifest(t, "dist", "  workers: 2\n  certificate_policy: alice/xgb\n")
	d.certPolicy(t, digest)
	// Worker 1's view: the same manifest and key elsewhere, with one more file.
	other := filepath.Join(d.dir, "w1")
	for _, sub := range []string{"train", "out"} {
		if err := os.MkdirAll(filepath.Join(other, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(dist, filepath.Join(other, "dist.yaml"))
	copyFile(d.ownerKey, filepath.Join(other, "owner.key"))
	for i := range 4 {
		name := fmt.Sprintf("part-%05d.csv.ppml", i)
		copyFile(filepath.Join(d.dir, "train", name), filepath.Join(other, "train", name))
	}
	copyFile(filepath.Join(d.dir, "train", "part-00003.csv.ppml"), filepath.Join(other, "train", "part-00004.csv.ppml"))
	peers := freeAddrs(t, 2)
	c0, out0 := d.start(t, dist, 0, peers)
	c1, out1 := d.start(t, filepath.Join(other, "dist.yaml"), 1, peers)
	for i, c := range []*exec.Cmd{c0, c1} {
		out := []*bytes.Buffer{out0, out1}[i]
		if err := c.Wait(); err == nil || !strings.Contains(out.String(), fmt.Sprintf("worker %d of 2: the workers were shown different files", i)) {
			t.Errorf("worker %d: %v\n%s", i, err, out)
		}
	}
	for _, p := range []string{filepath.Join(d.dir, "out", "dist.model.ppml"), filepath.Join(other, "out", "dist.model.ppml")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s written: %v", p, err)
		}
	}
}

// runWorkers starts the workers of a distributed job from one manifest
// and waits for them; it fails the test if any failed.
func (d *distJob) runWorkers(t *testing.T, manifest string, n int) []*bytes.Buffer {
	t.Helper()
	peers := freeAddrs(t, n)
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range n {
		cmds[i], outs[i] = d.start(t, manifest, i, peers)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, outs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return outs
}

// A distributed job holds out test rows: each worker test_fraction of its
// own rows (the split of its row count with the job's seed). The metrics
// worker 0 records in the model and the report are those of every
// worker's held-out rows together — equal, figure for figure, to what an
// evaluate job in one process computes with the model on those rows.
func TestDistributedHeldOutMetrics(t *testing.T) {
	const rows, fraction, seed = 1000, 0.25, 11
	d := newDistJob(t, rows, 2)
	dist, digest := d.manifest(t, "held", fmt.Sprintf("  test_fraction: %g\n  seed: %d\n  workers: 2\n  certificate_policy: alice/xgb\n", fraction, seed))
	d.certPolicy(t, digest)
	d.runWorkers(t, dist, 2)
	raw := envelopetest.Decrypt(t, filepath.Join(d.dir, "out", "held.model.ppml"), d.key)
	m, err := DecodeModel(raw)
	if err != nil {
		t.Fatal(err)
	}
	var report Report
	if err := json.Unmarshal(envelopetest.Decrypt(t, filepath.Join(d.dir, "out", "held.report.ppml"), d.key), &report); err != nil {
		t.Fatal(err)
	}
	// The held-out rows as the workers chose them, in worker order.
	table := distTable(rows)
	header, body := table[0], table[1:]
	var held bytes.Buffer
	held.WriteString(strings.Join(header, ",") + "\n")
	trained := 0
	for i := range 2 {
		part := body[len(body)*i/2 : len(body)*(i+1)/2]
		tr, te, err := split.TrainTest(len(part), fraction, seed)
		if err != nil {
			t.Fatal(err)
		}
		trained += len(tr)
		for _, k := range te {
			held.WriteString(strings.Join(part[k], ",") + "\n")
		}
	}
	res, err := Run(context.Background(), Config{}, &mlspec.Params{Task: mlspec.Evaluate},
		map[string]Input{mlspec.InputModel: {ReaderAt: bytes.NewReader(raw), Size: int64(len(raw))},
			mlspec.InputData: {ReaderAt: bytes.NewReader(held.Bytes()), Size: int64(held.Len()), Format: mlspec.CSV}},
		map[string]Output{})
	if err != nil {
		t.Fatal(err)
	}
	want, got := res.Report.Metrics, m.Metrics
	if got == nil || got.Classification == nil {
		t.Fatalf("the distributed model records no metrics: %+v", got)
	}
	if got.TestRows != 250 || got.TestRows != want.TestRows || got.TrainRows != trained || got.TestFraction != fraction || got.Seed != seed {
		t.Errorf("rows: %d held out (want %d), %d trained (want %d), fraction %g, seed %d", got.TestRows, want.TestRows, got.TrainRows, trained, got.TestFraction, got.Seed)
	}
	if !reflect.DeepEqual(got.Classification, want.Classification) {
		g, _ := json.Marshal(got.Classification)
		w, _ := json.Marshal(want.Classification)
		t.Errorf("distributed metrics %s\nsingle-process evaluation of the same rows %s", g, w)
	}
	if !reflect.DeepEqual(report.Metrics, m.Metrics) {
		t.Errorf("the report's metrics %+v differ from the model's %+v", report.Metrics, m.Metrics)
	}
}

// partition: rows: both workers are given the same one-file input, each
// decrypts it and trains on its half of the rows, and the model equals the
// one a single process trains on the file.
func TestDistributedRowPartition(t *testing.T) {
	d := newDistJob(t, 1000, 1)
	const file = "train/part-00000.csv.ppml"
	single, _ := d.manifestFrom(t, "single", file, "")
	keys, err := launcher.NewLocalKeys(d.ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runJob(single, launcher.Config{Keys: keys}); err != nil {
		t.Fatal(err)
	}
	dist, digest := d.manifestFrom(t, "dist", file, "  workers: 2\n  partition: rows\n  certificate_policy: alice/xgb\n")
	d.certPolicy(t, digest)
	outs := d.runWorkers(t, dist, 2)
	for i := range 2 {
		if want := fmt.Sprintf("worker %d of 2 trained on its 500 rows", i); !strings.Contains(outs[i].String(), want) {
			t.Errorf("worker %d's log lacks %q:\n%s", i, want, outs[i])
		}
	}
	if got, want := d.model(t, "dist"), d.model(t, "single"); !bytes.Equal(got.Inner, want.Inner) {
		t.Fatal("the model of a row partition differs from the single-process model")
	}
}
