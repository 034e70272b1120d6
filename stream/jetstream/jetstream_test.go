package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/jetstream"
	"github.com/ppml/ppml/stream/streamtest"
)

type broker struct {
	e *jetstream.Embedded
	j js.JetStream
}

func (b *broker) Addr() string { return b.e.URL() }
func (b *broker) Create(t testing.TB, name string, partitions int) {
	if err := jetstream.CreateStream(context.Background(), b.j, name, jetstream.Options{}); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Append(t testing.TB, name string, p int, values ...[]byte) {
	if err := jetstream.Append(context.Background(), b.j, name, p, values, nil); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Read(t testing.TB, name string, p int) [][]byte {
	out, err := jetstream.Read(context.Background(), b.j, name, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const leaseTTL = 1500 * time.Millisecond

var backend = streamtest.Backend{
	Name: "jetstream",
	Start: func(t *testing.T) streamtest.Broker {
		e, err := jetstream.StartEmbedded(t.TempDir(), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		nc, err := e.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		j, err := js.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return &broker{e: e, j: j}
	},
	Connect: func(addr string) (stream.Log, func(), error) {
		nc, err := nats.Connect(addr, nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, err
		}
		return jetstream.New(nc, jetstream.Options{LeaseTTL: leaseTTL}), nc.Close, nil
	},
	Dead: leaseTTL,
}

func TestMain(m *testing.M) { streamtest.Main(m, backend) }

func TestKill(t *testing.T)     { streamtest.RunKill(t, backend) }
func TestScaleOut(t *testing.T) { streamtest.RunScaleOut(t, backend) }

// restartable is an embedded nats-server on a fixed port and store
// directory, shut down and started again as one broker.
type restartable struct {
	broker
	dir  string
	port int
}

func (r *restartable) start(t testing.TB) {
	e, err := jetstream.StartEmbeddedPort(r.dir, r.port)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	j, err := js.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r.e, r.j = e, j
	t.Cleanup(func() { nc.Close(); e.Shutdown() })
}

func (r *restartable) Stop(t testing.TB)    { r.e.Shutdown() }
func (r *restartable) Restart(t testing.TB) { r.start(t) }

// TestBrokerGoesAway shuts the nats-server down mid-stream for longer than
// a task lease and starts it again on the same port and store: the client
// reconnects, the worker takes its tasks back from their snapshots, and
// the output is exact (results published again after the outage are
// de-duplicated by their message ids).
func TestBrokerGoesAway(t *testing.T) {
	r := &restartable{dir: t.TempDir(), port: streamtest.FreePort(t)}
	r.start(t)
	for _, l := range streamtest.RunBrokerGoesAway(t, backend, r, 2*leaseTTL) {
		t.Logf("worker: %s", l)
	}
}

// TestBrokerRestartsIdle restarts the nats-server, for less than a task
// lease, while the worker waits on an empty log: the worker keeps its
// tasks, makes again the consumers the restart lost (their state is in
// the server's memory), and reads what comes after.
// The leases outlive the restart and the client's reconnect (2 s), so
// nothing but the lost consumers tells the worker of it.
func TestBrokerRestartsIdle(t *testing.T) {
	r := &restartable{dir: t.TempDir(), port: streamtest.FreePort(t)}
	r.start(t)
	long := backend
	long.Connect = func(addr string) (stream.Log, func(), error) {
		nc, err := nats.Connect(addr, nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, err
		}
		return jetstream.New(nc, jetstream.Options{LeaseTTL: 30 * time.Second}), nc.Close, nil
	}
	for _, l := range streamtest.RunBrokerRestartsIdle(t, long, r, leaseTTL/5) {
		t.Logf("worker: %s", l)
	}
}
