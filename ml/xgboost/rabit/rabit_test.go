package rabit_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/ml/xgboost/rabit"
	"github.com/ppml/ppml/workload/tunnel"
	"github.com/ppml/ppml/workload/workloadtest"
)

// data is a binary classification set whose features take few distinct
// values, so that XGBoost's quantile cuts are exact whether one worker
// sketches all rows or several merge their sketches.
func data(rows, cols int) (x, y []float32) {
	r := rand.New(rand.NewPCG(7, 11))
	x = make([]float32, rows*cols)
	y = make([]float32, rows)
	for i := range rows {
		s := 0.0
		for j := range cols {
			v := float32(r.IntN(16))
			x[i*cols+j] = v
			s += float64(v) * float64(j%3-1)
		}
		if s+r.NormFloat64()*3 > 0 {
			y[i] = 1
		}
	}
	return x, y
}

var params = []xgboost.Param{{Name: "objective", Value: "binary:logistic"}, {Name: "max_depth", Value: "4"}, {Name: "eta", Value: "0.3"}}

const rows, cols, rounds = 3000, 6, 8

func train(t *testing.T, x, y []float32, coll *xgboost.Collective) (*xgboost.Booster, error) {
	d, err := xgboost.NewDMatrix(x, len(y), cols, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		t.Fatal(err)
	}
	return xgboost.Train(d, xgboost.Config{Params: params, Rounds: rounds, NThread: 1, Collective: coll})
}

// partition is worker i's rows of n workers (contiguous blocks).
func partition(x, y []float32, i, n int) ([]float32, []float32) {
	lo, hi := len(y)*i/n, len(y)*(i+1)/n
	return x[lo*cols : hi*cols], y[lo:hi]
}

func accuracy(t *testing.T, b *xgboost.Booster, x, y []float32) float64 {
	d, err := xgboost.NewDMatrix(x, len(y), cols, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, err := b.Predict(d)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i, v := range p.Values {
		if (v > 0.5) == (y[i] == 1) {
			ok++
		}
	}
	return float64(ok) / float64(len(y))
}

func modelJSON(t *testing.T, b *xgboost.Booster) []byte {
	j, err := b.SaveJSON()
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// runWorkers trains n workers concurrently, each on its partition, with
// the collective configuration coll(i), and returns their models.
func runWorkers(t *testing.T, n int, x, y []float32, coll func(i int) *xgboost.Collective) ([][]byte, []error) {
	models := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			px, py := partition(x, y, i, n)
			b, err := train(t, px, py, coll(i))
			if err != nil {
				errs[i] = err
				return
			}
			defer b.Close()
			models[i] = modelJSON(t, b)
		}()
	}
	wg.Wait()
	return models, errs
}

// Two workers of one job, each with a certificate from the key service's
// CA, train over attested TLS tunnels only: both produce the same model,
// equal to the model one process trains on all rows (exact cuts), with
// the same accuracy.
func TestDistributedTrainingOverTunnels(t *testing.T) {
	x, y := data(rows, cols)
	single, err := train(t, x, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	want := modelJSON(t, single)
	wantAcc := accuracy(t, single, x, y)
	cl := workloadtest.New(t)
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) { distributed(t, cl, n, x, y, want, wantAcc) })
	}
}

func distributed(t *testing.T, cl *workloadtest.Cluster, n int, x, y []float32, want []byte, wantAcc float64) {
	lns, peers := listeners(t, n)
	workers := make([]*rabit.Worker, n)
	var streams sync.Map // target -> *atomic.Int64
	count := func(target string, _ *x509.Certificate) {
		v, _ := streams.LoadOrStore(target, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		cert := cl.Issue(t, workloadtest.Role)
		srv, cli := cl.TLS(cert, tunnel.ALPN, workloadtest.Role)
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i], errs[i] = rabit.Join(context.Background(), rabit.Options{Index: i, Peers: peers, Listener: lns[i], ServerTLS: srv, ClientTLS: cli, OnStream: count})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	models, errs := runWorkers(t, n, x, y, func(i int) *xgboost.Collective {
		return &xgboost.Collective{TrackerHost: workers[i].TrackerHost, TrackerPort: workers[i].TrackerPort, TaskID: rabit.TaskID(i), WorldSize: n, Rank: i}
	})
	for i := n - 1; i >= 0; i-- {
		if err := workers[i].Close(); err != nil {
			t.Errorf("worker %d close: %v", i, err)
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v (relay: %v)", i, err, workers[i].Err())
		}
	}
	// Every link went through the tunnels: each worker's tracker
	// connections (start, shutdown) and the link between the two.
	for target, least := range map[string]int64{rabit.TargetTracker: int64(2 * n), rabit.TargetRabit: int64(n - 1)} {
		v, ok := streams.Load(target)
		if !ok || v.(*atomic.Int64).Load() < least {
			t.Fatalf("fewer than %d tunnel streams to %s", least, target)
		}
	}
	for i := 1; i < n; i++ {
		if !bytes.Equal(models[0], models[i]) {
			t.Fatalf("workers 0 and %d built different models", i)
		}
	}
	b, err := xgboost.LoadJSON(models[0], 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	acc := accuracy(t, b, x, y)
	if acc < wantAcc-0.01 {
		t.Fatalf("distributed accuracy %.4f, single-process %.4f", acc, wantAcc)
	}
	if !bytes.Equal(models[0], want) {
		t.Errorf("distributed model differs from the single-process model (accuracy %.4f vs %.4f)", acc, wantAcc)
	}
}

func listeners(t *testing.T, n int) ([]net.Listener, []string) {
	lns := make([]net.Listener, n)
	peers := make([]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], peers[i] = ln, ln.Addr().String()
	}
	return lns, peers
}

// A worker whose certificate is not accepted (another job) cannot join:
// worker 0's tunnel refuses it before XGBoost starts, and the error says so.
func TestWorkerWithoutValidCertificateCannotJoin(t *testing.T) {
	cl := workloadtest.New(t)
	lns, peers := listeners(t, 2)
	good := cl.Issue(t, workloadtest.Role)
	srv0, cli0 := cl.TLS(good, tunnel.ALPN, workloadtest.Role)
	w0, err := rabit.Join(context.Background(), rabit.Options{Index: 0, Peers: peers, Listener: lns[0], ServerTLS: srv0, ClientTLS: cli0})
	if err != nil {
		t.Fatal(err)
	}
	defer w0.Stop()
	other := []byte("version: 1\nname: other-job\nengine: exec\nparameters:\n  command: [cat]\n")
	ocl := &workloadtest.Cluster{KMS: cl.KMS, Sim: cl.Sim, Owner: cl.Owner, Runner: cl.Runner, Manifest: other,
		JobDigest: workloadtest.Digest(t, other), PolicyName: "alice/other", CA: cl.CA, CRL: cl.CRL}
	ocl.SetPolicy(t, "  roles: ["+workloadtest.Role+"]\n")
	bad := ocl.Issue(t, workloadtest.Role)
	srv1, cli1 := ocl.TLS(bad, tunnel.ALPN, workloadtest.Role)
	// It also trusts only its own job, so either side's check may end it.
	_, err = rabit.Join(context.Background(), rabit.Options{Index: 1, Peers: peers, Listener: lns[1], ServerTLS: srv1, ClientTLS: cli1, ConnectTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), peers[0]) || !strings.Contains(err.Error(), "job_digest") {
		t.Fatalf("a worker of another job joined: %v", err)
	}
	// With a client configuration that trusts anything, worker 0 itself
	// refuses the certificate.
	lax := cli1.Clone()
	lax.VerifyConnection = nil
	_, err = rabit.Join(context.Background(), rabit.Options{Index: 1, Peers: peers, Listener: lns[1], ServerTLS: srv1, ClientTLS: lax, ConnectTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("worker 0 accepted a worker of another job: %v", err)
	}
}

// A tracker that cannot be reached fails the worker fast, naming the address.
func TestUnreachableTracker(t *testing.T) {
	cl := workloadtest.New(t)
	lns, peers := listeners(t, 2)
	lns[0].Close() // nobody serves worker 0's address
	cert := cl.Issue(t, workloadtest.Role)
	srv, cli := cl.TLS(cert, tunnel.ALPN, workloadtest.Role)
	start := time.Now()
	_, err := rabit.Join(context.Background(), rabit.Options{Index: 1, Peers: peers, Listener: lns[1], ServerTLS: srv, ClientTLS: cli, ConnectTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), peers[0]) {
		t.Fatalf("unreachable worker 0: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s to fail", d)
	}
}

// A worker that dies mid-training fails the others' training with an
// error (no model), instead of a hang or a partial model.
func TestWorkerDiesMidTraining(t *testing.T) {
	cl := workloadtest.New(t)
	const n = 2
	lns, peers := listeners(t, n)
	workers := make([]*rabit.Worker, n)
	for i := n - 1; i >= 0; i-- {
		cert := cl.Issue(t, workloadtest.Role)
		srv, cli := cl.TLS(cert, tunnel.ALPN, workloadtest.Role)
		i := i
		done := make(chan error, 1)
		go func() {
			var err error
			workers[i], err = rabit.Join(context.Background(), rabit.Options{Index: i, Peers: peers, Listener: lns[i], ServerTLS: srv, ClientTLS: cli})
			done <- err
		}()
		if i == 0 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		} else {
			defer func() {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}()
		}
	}
	x, y := data(20000, cols)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			px, py := partition(x, y, i, n)
			d, _ := xgboost.NewDMatrix(px, len(py), cols, 1)
			defer d.Close()
			d.SetLabels(py)
			b, err := xgboost.Train(d, xgboost.Config{Params: params, Rounds: 2000, NThread: 1, Collective: &xgboost.Collective{
				TrackerHost: workers[i].TrackerHost, TrackerPort: workers[i].TrackerPort, TaskID: rabit.TaskID(i), WorldSize: n, Rank: i, Timeout: 5 * time.Second}})
			if b != nil {
				b.Close()
			}
			errs[i] = err
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	workers[1].Stop() // worker 1's runtime dies: its tunnels close
	wg.Wait()
	workers[0].Stop()
	if errs[0] == nil {
		t.Fatal("worker 0 finished training without worker 1")
	}
	if msg := workers[0].TrainingError(errs[0]).Error(); !strings.Contains(msg, "Allreduce failed") || !strings.Contains(msg, "worker 0 of 2") {
		t.Fatalf("worker 0's error: %s", msg)
	}
}

// Worker 0 may use a tracker already running beside it (a sidecar), on
// loopback only.
func TestSidecarTracker(t *testing.T) {
	cl := workloadtest.New(t)
	tr, err := rabit.StartTracker(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	lns, peers := listeners(t, 2)
	ws := make([]*rabit.Worker, 2)
	for i := range 2 {
		srv, cli := cl.TLS(cl.Issue(t, workloadtest.Role), tunnel.ALPN, workloadtest.Role)
		o := rabit.Options{Index: i, Peers: peers, Listener: lns[i], ServerTLS: srv, ClientTLS: cli}
		if i == 0 {
			o.Tracker = tr.Addr()
		}
		if ws[i], err = rabit.Join(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	x, y := data(600, cols)
	models, errs := runWorkers(t, 2, x, y, func(i int) *xgboost.Collective {
		return &xgboost.Collective{TrackerHost: ws[i].TrackerHost, TrackerPort: ws[i].TrackerPort, TaskID: rabit.TaskID(i), WorldSize: 2, Rank: i}
	})
	ws[1].Close()
	ws[0].Stop()
	if errs[0] != nil || errs[1] != nil || !bytes.Equal(models[0], models[1]) {
		t.Fatalf("training with a sidecar tracker: %v %v", errs[0], errs[1])
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv, cli := cl.TLS(cl.Issue(t, workloadtest.Role), tunnel.ALPN, workloadtest.Role)
	if _, err := rabit.Join(context.Background(), rabit.Options{Index: 0, Peers: []string{ln.Addr().String()}, Listener: ln, ServerTLS: srv, ClientTLS: cli, Tracker: "10.0.0.1:9091"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a tracker off loopback: %v", err)
	}
}

// Workers compare a value over the collective before training
// (Collective.Agree): the same value trains, different ones fail every
// worker with ErrDisagree.
func TestWorkersAgree(t *testing.T) {
	cl := workloadtest.New(t)
	x, y := data(600, cols)
	for _, c := range []struct {
		name   string
		values [2]string
		same   bool
	}{{"same", [2]string{"listing-a", "listing-a"}, true}, {"different", [2]string{"listing-a", "listing-b"}, false}} {
		t.Run(c.name, func(t *testing.T) {
			lns, peers := listeners(t, 2)
			ws := make([]*rabit.Worker, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				srv, cli := cl.TLS(cl.Issue(t, workloadtest.Role), tunnel.ALPN, workloadtest.Role)
				wg.Add(1)
				go func() {
					defer wg.Done()
					ws[i], errs[i] = rabit.Join(context.Background(), rabit.Options{Index: i, Peers: peers, Listener: lns[i], ServerTLS: srv, ClientTLS: cli})
				}()
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatal(errs)
			}
			models, errs := runWorkers(t, 2, x, y, func(i int) *xgboost.Collective {
				return &xgboost.Collective{TrackerHost: ws[i].TrackerHost, TrackerPort: ws[i].TrackerPort, TaskID: rabit.TaskID(i), WorldSize: 2, Rank: i,
					Agree: []byte(c.values[i])}
			})
			for i := 1; i >= 0; i-- {
				if c.same {
					ws[i].Close()
				} else {
					ws[i].Stop()
				}
			}
			for i, err := range errs {
				if c.same && (err != nil || !bytes.Equal(models[0], models[1])) {
					t.Errorf("worker %d with the same value: %v", i, err)
				}
				if !c.same && !errors.Is(err, xgboost.ErrDisagree) {
					t.Errorf("worker %d with different values: %v", i, err)
				}
			}
		})
	}
}
