package rabit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/internal/proctest"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/ml/xgboost/rabit"
	"github.com/ppml/ppml/workload/workloadtest"
)

// workerConfig is what a worker process is told: how to reach the key
// service as a runner, its simulated TEE, the job, and the cluster.
type workerConfig struct {
	KMSURL, Fingerprint, Token string
	SimDir, SimExe             string
	Manifest                   []byte
	Policy                     string
	Index                      int
	Peers                      []string
	Out                        string
}

const workerEnv = "PPML_RABIT_TEST_WORKER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(workerEnv); cfg != "" {
		if err := workerMain(cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// workerMain is one worker process, as ppml-run will run it in its TEE:
// a renewing certificate obtained through the certificate protocol, the
// CA's live revocation list, the tunnels, and training on its rows.
func workerMain(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg workerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	ctx := context.Background()
	c, err := client.New(cfg.KMSURL, cfg.Token, client.Options{Fingerprint: cfg.Fingerprint})
	if err != nil {
		return err
	}
	m, err := job.Parse(cfg.Manifest, "/", specs.All)
	if err != nil {
		return err
	}
	d0 := m.Digest()
	jd := d0[:]
	att := (&kmstest.Sim{Dir: cfg.SimDir, Executable: cfg.SimExe}).Attester()
	w, err := rabit.JoinAttested(ctx, rabit.AttestedOptions{KMS: c, Attester: att, Manifest: cfg.Manifest, JobDigest: jd,
		Policy: cfg.Policy, Index: cfg.Index, Peers: cfg.Peers, ConnectTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	x, y := data(rows, cols)
	px, py := partition(x, y, cfg.Index, len(cfg.Peers))
	d, err := xgboost.NewDMatrix(px, len(py), cols, 1)
	if err != nil {
		return err
	}
	if err := d.SetLabels(py); err != nil {
		return err
	}
	bst, err := xgboost.Train(d, xgboost.Config{Params: params, Rounds: rounds, NThread: 1, Collective: w.Collective()})
	if err != nil {
		w.Stop()
		return w.TrainingError(err)
	}
	model, err := bst.SaveJSON()
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	f, err := atomicfile.Create(cfg.Out, atomicfile.Options{Perm: 0o600})
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(model); err != nil {
		return err
	}
	return f.Commit()
}

// Three worker processes on 127.0.0.1, each obtaining its own certificate
// from the key service through the certificate protocol, train together
// over attested tunnels: every process writes the same model, equal to
// the model one process trains on all rows.
func TestDistributedWorkerProcesses(t *testing.T) {
	cl := workloadtest.New(t)
	const n = 3
	x, y := data(rows, cols)
	single, err := train(t, x, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := modelJSON(t, single)
	single.Close()
	lns, peers := listeners(t, n)
	for _, ln := range lns {
		ln.Close() // the worker processes listen on these addresses
	}
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range n {
		cfg := workerConfig{KMSURL: cl.KMS.URL, Fingerprint: cl.KMS.Fingerprint, Token: cl.RunnerToken, SimDir: cl.Sim.Dir, SimExe: cl.Sim.Executable,
			Manifest: cl.Manifest, Policy: cl.PolicyName, Index: i, Peers: peers, Out: filepath.Join(dir, fmt.Sprintf("model-%d.json", i))}
		b, _ := json.Marshal(cfg)
		p := filepath.Join(dir, fmt.Sprintf("worker-%d.json", i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cmds[i] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), workerEnv+"="+p)
		outs[i] = &bytes.Buffer{}
		cmds[i].Stderr = outs[i]
		proctest.Start(t, cmds[i])
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("worker process %d: %v\n%s", i, err, outs[i])
		}
	}
	if t.Failed() {
		return
	}
	for i := range n {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("model-%d.json", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("worker process %d's model differs from the single-process model", i)
		}
	}
	// Each process's certificate is on the audit log.
	all, err := cl.KMS.Admin.AuditList(context.Background(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	issued := 0
	for _, e := range all {
		if e.Type == "cert_issue" && strings.Contains(e.Reason, "role "+workloadtest.Role) {
			issued++
		}
	}
	if issued < n {
		t.Fatalf("%d certificates on the audit log, want %d", issued, n)
	}
}
