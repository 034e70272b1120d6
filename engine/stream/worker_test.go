package stream_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/stream/redisstream"
	"github.com/ppml/ppml/stream/streamtest"
)

// The manifest form of streamtest.Plan: the same pipeline, run by the
// launcher as a worker on a Redis log.
const workerManifest = `name: eo
engine: stream
parameters:
  log: {kind: redis, url: "redis://ADDR", worker: w1}
  source: {stream: events, partitions: 3, format: json}
  event_time: {field: t, unit: unix_ms, max_out_of_orderness: 5s}
  key_by: [k]
  window: {sliding: 20s, every: 10s}
  allowed_lateness: 5s
  aggregate:
    n: count
    sum: {sum: v}
    mean: {mean: v}
    d: {distinct_count: v}
  sink: {stream: eo-out, partitions: 2, dead_letter: eo-dead, late: eo-late}
  checkpoint_interval: 50ms
  keys: {source: src.key.ppml, sink: sink.key.ppml, state: state.key.ppml}
`

type redisBroker struct{ rdb *redis.Client }

func (b redisBroker) Addr() string                   { return "" }
func (b redisBroker) Create(testing.TB, string, int) {}
func (b redisBroker) Append(t testing.TB, name string, p int, values ...[]byte) {
	if err := redisstream.Append(context.Background(), b.rdb, name, p, values...); err != nil {
		t.Fatal(err)
	}
}
func (b redisBroker) Read(t testing.TB, name string, p int) [][]byte {
	out, err := redisstream.Read(context.Background(), b.rdb, name, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWorkerUnderLauncher runs a stream job on a real redis-server the way
// ppml-run does: keys released from envelope files, the engine a
// launcher.LongRunning one. When stopped, the worker drains (commits and
// leaves) and the run succeeds; its output is that of the reference run.
func TestWorkerUnderLauncher(t *testing.T) {
	r := streamtest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	b := redisBroker{rdb}

	dir := t.TempDir()
	owner, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	src, sink, state := streamtest.Keys()
	for name, k := range map[string]*envelope.LocalKey{"src": src, "sink": sink, "state": state} {
		kf := keyfile.Marshal(bytes.Repeat([]byte{map[string]byte{"src": 1, "sink": 2, "state": 3}[name]}, 32), k.ID(), time.Now())
		envelopetest.Encrypt(t, filepath.Join(dir, name+".key.ppml"), owner.LocalKey, kf, envelope.TypeBytes)
	}
	mf := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(mf, []byte(strings.Replace(workerManifest, "ADDR", r.Addr, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := launcher.Load(mf)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	if err != nil {
		t.Fatal(err)
	}

	data := streamtest.Workload(100)
	want := streamtest.Reference(t, data)
	var log syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := launcher.Run(ctx, launcher.Config{Manifest: m, Keys: keys, Log: &log, Grace: 20 * time.Second})
		done <- err
	}()
	for p, recs := range data {
		b.Append(t, "events", p, recs...)
	}
	deadline := time.Now().Add(time.Minute)
	var got streamtest.Output
	for got = streamtest.ReadOutput(t, b); !got.Ended; got = streamtest.ReadOutput(t, b) {
		select {
		case err := <-done:
			t.Fatalf("the worker ended before the stream did: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete output after a minute:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("a stopped worker's run failed: %v\n%s", err, log.String())
	}
	streamtest.Compare(t, got, want)
	for _, line := range []string{"stream engine draining", "stream engine: stopped after"} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("the launcher's log does not say %q:\n%s", line, log.String())
		}
	}
	// The worker left its group: its leases are gone, so a new worker
	// takes the tasks at once rather than after the lease's 10 seconds.
	if n, err := rdb.Keys(context.Background(), "ppml:*lease*").Result(); err != nil || len(n) != 0 {
		t.Errorf("leases left behind after the drain: %v %v", n, err)
	}
}
