package rabit_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/ml/xgboost/rabit"
	"github.com/ppml/ppml/workload/tunnel"
	"github.com/ppml/ppml/workload/workloadtest"
)

// The tests here are about waits that used to have no bound: a worker whose
// peer died or stopped answering fails within seconds instead.

// trackerPeer speaks XGBoost's side of the tracker protocol over plain
// TCP: a worker that the test makes die at a chosen point.
type trackerPeer struct {
	t *testing.T
	c net.Conn
}

func dialTracker(t *testing.T, addr string) *trackerPeer {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &trackerPeer{t, c}
}

func (p *trackerPeer) put(vs ...int32) {
	for _, v := range vs {
		if err := binary.Write(p.c, binary.LittleEndian, v); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *trackerPeer) putStr(s string) {
	p.put(int32(len(s)))
	if _, err := io.WriteString(p.c, s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *trackerPeer) int() int32 {
	var v int32
	if err := binary.Read(p.c, binary.LittleEndian, &v); err != nil {
		p.t.Fatal(err)
	}
	return v
}

func (p *trackerPeer) str() string {
	b := make([]byte, p.int())
	if _, err := io.ReadFull(p.c, b); err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

const magic = 0xff99

// A worker whose connection to the tracker closed in the middle of a
// message (it died, or its runtime stopped it while its "shutdown" was
// in flight) fails the tracker at once. XGBoost 1.7's own tracker loops
// on such a connection for ever and serves nobody else, so every other
// worker's XGBoost waited on it without a bound — in its shutdown too,
// before its runtime could stop anything: the hang of
// TestDistributedWorkersShownDifferentFiles.
func TestTrackerFailsOnTruncatedMessage(t *testing.T) {
	tr, err := rabit.StartTracker(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	p := dialTracker(t, tr.Addr())
	p.put(magic)
	if m := p.int(); m != magic {
		t.Fatalf("tracker magic %#x", m)
	}
	p.put(1) // a rank, then nothing more
	p.c.Close()
	select {
	case <-tr.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the tracker still runs 20s after a worker's connection closed mid-message")
	}
	if err := tr.Wait(); err == nil || !strings.Contains(err.Error(), "closed in the middle of a message") {
		t.Fatalf("tracker: %v", err)
	}
}

// A worker that connected to the tracker and then says nothing (frozen,
// or cut off without a reset) fails the tracker after its read timeout.
func TestTrackerFailsOnSilentWorker(t *testing.T) {
	defer rabit.SetTimeouts(time.Second, time.Minute)()
	tr, err := rabit.StartTracker(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	p := dialTracker(t, tr.Addr())
	p.put(magic)
	p.int()
	select {
	case <-tr.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the tracker still waits 20s on a silent worker")
	}
	if err := tr.Wait(); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("tracker: %v", err)
	}
}

// A tracker that does not answer (a sidecar stuck on another connection)
// fails the worker's XGBoost within the relay's bound, naming worker 0.
func TestSilentTrackerFailsWorker(t *testing.T) {
	defer rabit.SetTimeouts(time.Minute, time.Second)()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cl := workloadtest.New(t)
	lns, peers := listeners(t, 1)
	srv, cli := cl.TLS(cl.Issue(t, workloadtest.Role), tunnel.ALPN, workloadtest.Role)
	w, err := rabit.Join(context.Background(), rabit.Options{Index: 0, Peers: peers, Listener: lns[0], ServerTLS: srv, ClientTLS: cli, Tracker: silent.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	x, y := data(100, cols)
	start := time.Now()
	_, err = train(t, x, y, &xgboost.Collective{TrackerHost: w.TrackerHost, TrackerPort: w.TrackerPort, TaskID: rabit.TaskID(0), WorldSize: 1, Rank: 0})
	if err == nil {
		t.Fatal("trained without a tracker")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s to fail", d)
	}
	if rerr := w.Err(); rerr == nil || !strings.Contains(rerr.Error(), "did not answer within 1s") || !strings.Contains(rerr.Error(), peers[0]) {
		t.Errorf("relay: %v", rerr)
	}
}

// The tracker paired worker 0 with worker 1, then worker 1 died before
// connecting to it: worker 0's XGBoost waits in accept, which nothing
// else bounds, until its runtime stops it (the engine's join watchdog);
// Stop then ends that wait.
func TestPeerDiesAfterPairing(t *testing.T) {
	tr, err := rabit.StartTracker(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	cl := workloadtest.New(t)
	lns, peers := listeners(t, 2)
	lns[1].Close()
	srv, cli := cl.TLS(cl.Issue(t, workloadtest.Role), tunnel.ALPN, workloadtest.Role)
	w0, err := rabit.Join(context.Background(), rabit.Options{Index: 0, Peers: peers, Listener: lns[0], ServerTLS: srv, ClientTLS: cli, Tracker: tr.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer w0.Stop()
	x, y := data(200, cols)
	joined := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		px, py := partition(x, y, 0, 2)
		b, err := train(t, px, py, &xgboost.Collective{TrackerHost: w0.TrackerHost, TrackerPort: w0.TrackerPort, TaskID: rabit.TaskID(0), WorldSize: 2, Rank: 0,
			Joined: func() { close(joined) }})
		if b != nil {
			b.Close()
		}
		errc <- err
	}()
	// Worker 1, straight to the tracker: it starts, is paired with worker
	// 0, reports a port, and dies without connecting.
	p := dialTracker(t, tr.Addr())
	p.put(magic)
	p.int()
	p.put(-1, 2)
	p.putStr(rabit.TaskID(1))
	p.putStr("start")
	if rank := p.int(); rank != 1 {
		t.Fatalf("rank %d", rank)
	}
	p.int() // parent
	p.int() // world
	for range p.int() {
		p.int() // tree neighbours
	}
	p.int() // ring previous
	p.int() // ring next
	p.put(0)
	nconn, _ := p.int(), p.int()
	for range nconn {
		p.str()
		p.int()
		p.int()
	}
	p.put(0, 9)
	p.c.Close()
	select {
	case <-joined:
		t.Fatal("worker 0 joined without its peer")
	case err := <-errc:
		t.Fatalf("worker 0 ended before it was stopped: %v", err)
	case <-time.After(time.Second):
	}
	w0.Stop()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("worker 0 trained without its peer")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker 0's XGBoost still waits for its peer 20s after Stop")
	}
}
