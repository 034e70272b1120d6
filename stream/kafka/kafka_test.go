package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/kafka"
	"github.com/ppml/ppml/stream/streamtest"
)

type broker struct {
	c  *kfake.Cluster
	cl *kgo.Client
}

func (b *broker) Addr() string { return strings.Join(b.c.ListenAddrs(), ",") }
func (b *broker) Create(t testing.TB, name string, partitions int) {
	if err := kafka.CreateTopic(context.Background(), b.cl, name, partitions, -1, nil); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Append(t testing.TB, name string, p int, values ...[]byte) {
	if err := kafka.Append(context.Background(), b.cl, name, p, values...); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Read(t testing.TB, name string, p int) [][]byte {
	out, err := kafka.Read(context.Background(), b.c.ListenAddrs(), name, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const sessionTimeout = 6 * time.Second

var backend = streamtest.Backend{
	Name: "kafka",
	Start: func(t *testing.T) streamtest.Broker {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return &broker{c: c, cl: cl}
	},
	Connect: func(addr string) (stream.Log, func(), error) {
		return kafka.New(kafka.Options{Brokers: strings.Split(addr, ","), SessionTimeout: sessionTimeout,
			TransactionTimeout: 10 * time.Second}), func() {}, nil
	},
	Dead: sessionTimeout,
}

func TestMain(m *testing.M) { streamtest.Main(m, backend) }

func TestKill(t *testing.T)     { streamtest.RunKill(t, backend) }
func TestScaleOut(t *testing.T) { streamtest.RunScaleOut(t, backend) }

// TestDrainLeaves: a worker stopped on purpose leaves the group although
// it is a static member, so its tasks move at once, not after the session
// timeout (a minute here, which a static member that merely closed its
// client would hold them for). The output stays exact.
func TestDrainLeaves(t *testing.T) {
	const longSession = time.Minute
	data := streamtest.Workload(100)
	want := streamtest.Reference(t, data)
	b := backend.Start(t).(*broker)
	b.Create(t, "events", streamtest.Partitions)
	src, sink, state := streamtest.Keys()
	type worker struct {
		stop     context.CancelFunc
		done     chan error
		mu       sync.Mutex
		assigned int
	}
	start := func(name string) *worker {
		w := &worker{done: make(chan error, 1)}
		ctx, stop := context.WithCancel(context.Background())
		w.stop = stop
		log := kafka.New(kafka.Options{Brokers: b.c.ListenAddrs(), SessionTimeout: longSession, TransactionTimeout: 10 * time.Second})
		go func() {
			_, err := stream.Run(ctx, stream.Config{Plan: streamtest.Plan(), Log: log, Worker: name,
				Keys: stream.Keys{Source: src, Sink: sink, State: state}, CheckpointInterval: 50 * time.Millisecond,
				Logf: func(f string, a ...any) {
					if strings.Contains(fmt.Sprintf(f, a...), " assigned, ") {
						w.mu.Lock()
						w.assigned++
						w.mu.Unlock()
					}
				}})
			w.done <- err
		}()
		return w
	}
	count := func(w *worker) int { w.mu.Lock(); defer w.mu.Unlock(); return w.assigned }
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after %v", what, limit)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	w1, w2 := start("w1"), start("w2")
	defer w1.stop()
	defer w2.stop()
	half := len(data[0]) / 2
	for p, recs := range data {
		b.Append(t, "events", p, recs[:half]...)
	}
	waitFor("both workers have tasks", 30*time.Second, func() bool { return count(w1) > 0 && count(w2) > 0 })
	n := count(w1)
	w2.stop()
	if err := <-w2.done; err != nil {
		t.Fatalf("w2's drain: %v", err)
	}
	waitFor("w2's tasks move to w1 after its drain", longSession/3, func() bool { return count(w1) > n })
	for p, recs := range data {
		b.Append(t, "events", p, recs[half:]...)
	}
	var got streamtest.Output
	waitFor("complete output", time.Minute, func() bool { got = streamtest.ReadOutput(t, b); return got.Ended })
	w1.stop()
	if err := <-w1.done; err != nil {
		t.Fatal(err)
	}
	streamtest.Compare(t, got, want)
}

// restartable is a kfake cluster persisting to a directory on a fixed
// port, closed and started again as one broker (its topics, transactions
// and group offsets reloaded from the directory).
type restartable struct {
	broker
	dir  string
	port int
}

func (r *restartable) start(t testing.TB) {
	c, err := kfake.NewCluster(kfake.Ports(r.port), kfake.DataDir(r.dir), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	r.c, r.cl = c, cl
	t.Cleanup(func() { cl.Close(); c.Close() })
}

func (r *restartable) Stop(t testing.TB)    { r.cl.Close(); r.c.Close() }
func (r *restartable) Restart(t testing.TB) { r.start(t) }

// TestBrokerGoesAway closes the broker mid-stream, with a transaction
// open, and starts it again on the same port and data: the commit under
// way fails (its outcome unknown), the worker starts over with a new client
// from the committed state, and the output is exact.
func TestBrokerGoesAway(t *testing.T) {
	r := &restartable{dir: t.TempDir(), port: streamtest.FreePort(t)}
	r.start(t)
	reported := streamtest.RunBrokerGoesAway(t, backend, r, 2*time.Second)
	if len(reported) == 0 {
		t.Error("the worker did not report the outage")
	}
	for _, l := range reported {
		t.Logf("worker: %s", l)
	}
}

// TestBrokerRestartsIdle restarts the broker while the worker waits on
// an empty log, everything it read committed: nothing to commit fails,
// so only its reads meet the outage, and it must read what comes after.
func TestBrokerRestartsIdle(t *testing.T) {
	r := &restartable{dir: t.TempDir(), port: streamtest.FreePort(t)}
	r.start(t)
	for _, l := range streamtest.RunBrokerRestartsIdle(t, backend, r, 2*time.Second) {
		t.Logf("worker: %s", l)
	}
}
