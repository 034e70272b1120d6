package redisstream_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/redisstream"
	"github.com/ppml/ppml/stream/streamtest"
)

type broker struct {
	r   *streamtest.Redis
	rdb *redis.Client
}

func (b *broker) Addr() string                                     { return b.r.Addr }
func (b *broker) Create(t testing.TB, name string, partitions int) {}
func (b *broker) Append(t testing.TB, name string, p int, values ...[]byte) {
	if err := redisstream.Append(context.Background(), b.rdb, name, p, values...); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Read(t testing.TB, name string, p int) [][]byte {
	out, err := redisstream.Read(context.Background(), b.rdb, name, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const leaseTTL = 1500 * time.Millisecond

var backend = streamtest.Backend{
	Name: "redis",
	Start: func(t *testing.T) streamtest.Broker {
		r := streamtest.StartRedis(t)
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
		t.Cleanup(func() { rdb.Close() })
		return &broker{r: r, rdb: rdb}
	},
	Connect: func(addr string) (stream.Log, func(), error) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		return redisstream.New(rdb, redisstream.Options{LeaseTTL: leaseTTL}), func() { rdb.Close() }, nil
	},
	Dead: leaseTTL,
}

func TestMain(m *testing.M) { streamtest.Main(m, backend) }

func TestKill(t *testing.T)     { streamtest.RunKill(t, backend) }
func TestScaleOut(t *testing.T) { streamtest.RunScaleOut(t, backend) }

// TestRedisGoesAway stops redis-server mid-stream: the worker says it is
// retrying, carries on when the server is back, and the output is exact.
func TestRedisGoesAway(t *testing.T) {
	data := streamtest.Workload(200)
	want := streamtest.Reference(t, data)
	r := streamtest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer rdb.Close()
	b := &broker{r: r, rdb: rdb}
	var mu sync.Mutex
	var logs []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		wrdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		defer wrdb.Close()
		src, sink, state := streamtest.Keys()
		_, err := stream.Run(ctx, stream.Config{Plan: streamtest.Plan(), Log: redisstream.New(wrdb, redisstream.Options{LeaseTTL: 3 * time.Second}),
			Worker: "w1", Keys: stream.Keys{Source: src, Sink: sink, State: state}, CheckpointInterval: 50 * time.Millisecond,
			Logf: func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }})
		done <- err
	}()
	half := len(data[0]) / 2
	for p, recs := range data {
		b.Append(t, "events", p, recs[:half]...)
	}
	time.Sleep(300 * time.Millisecond)
	r.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		said := strings.Contains(strings.Join(logs, "\n"), "retrying in")
		mu.Unlock()
		if said {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not report the lost server: %v", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Start(t)
	for p, recs := range data {
		b.Append(t, "events", p, recs[half:]...)
	}
	deadline = time.Now().Add(60 * time.Second)
	var got streamtest.Output
	for got = streamtest.ReadOutput(t, b); !got.Ended; got = streamtest.ReadOutput(t, b) {
		if time.Now().After(deadline) {
			t.Fatalf("no complete output; log:\n%s", strings.Join(logs, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	streamtest.Compare(t, got, want)
	mu.Lock()
	for _, l := range logs {
		if strings.Contains(l, "retrying") {
			t.Logf("worker: %s", l)
			break
		}
	}
	mu.Unlock()
}

// restartable is the test's redis-server, stopped and started again on
// its port and append-only file.
type restartable struct{ broker }

func (r *restartable) Stop(t testing.TB)    { r.r.Stop() }
func (r *restartable) Restart(t testing.TB) { r.r.Start(t) }

// TestBrokerRestartsIdle restarts redis-server, for less than a task
// lease, while the worker waits on an empty log, everything it read
// committed: only its reads meet the outage, and it must read what comes
// after.
func TestBrokerRestartsIdle(t *testing.T) {
	r := streamtest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer rdb.Close()
	for _, l := range streamtest.RunBrokerRestartsIdle(t, backend, &restartable{broker{r: r, rdb: rdb}}, leaseTTL/3) {
		t.Logf("worker: %s", l)
	}
}
