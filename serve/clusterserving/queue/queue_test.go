package queue_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/clusterserving/queue"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/record"
	"github.com/ppml/ppml/serve/servetest"
	"github.com/ppml/ppml/serve/tensor"
)

const (
	features = 4
	stream   = "serving_stream"
)

var testKey, _ = record.NewKey(bytes.Repeat([]byte{7}, record.KeySize))

// slow delays every prediction, so a test can stop a worker with entries in flight; negate
// flips the outputs, so a result written by that worker is recognisable.
type slow struct {
	model.Model
	delay  time.Duration
	negate bool
	gate   chan struct{} // if set, every prediction waits for it to close
}

func (s *slow) Predict(ctx context.Context, in []tensor.Tensor) ([]tensor.Tensor, error) {
	time.Sleep(s.delay)
	if s.gate != nil {
		<-s.gate
	}
	out, err := s.Model.Predict(ctx, in)
	if err == nil && s.negate {
		for i := range out[0].F32 {
			out[0].F32[i] = -out[0].F32[i]
		}
	}
	return out, err
}

type fixture struct {
	redis *servetest.Redis
	c     *redis.Client
	mf    []byte
	x     []float32
	want  []float32
}

func setup(t *testing.T) *fixture {
	mf, x := servetest.XGBoostModel(t, features, 10, 3)
	x = x[:200*features]
	b, err := xgboost.LoadJSON(mf, 1)
	servetest.Must(t, err)
	d, _ := xgboost.NewDMatrix(x, 200, features, 1)
	p, err := b.Predict(d)
	servetest.Must(t, err)
	d.Close()
	b.Close()
	r := servetest.StartRedis(t)
	return &fixture{redis: r, c: r.Client(t), mf: mf, x: x, want: p.Values}
}

func registry(t testing.TB, mf []byte, wrap func(model.Model) model.Model) *model.Registry {
	m, err := tabular.Load(mf, tabular.Options{Name: "xgb", Version: "1", Threads: 1})
	servetest.Must(t, err)
	var mm model.Model = m
	if wrap != nil {
		mm = wrap(m)
	}
	reg := model.NewRegistry()
	_, err = reg.Add(mm, model.BatchOptions{MaxBatch: 16})
	servetest.Must(t, err)
	t.Cleanup(func() { reg.Close() })
	return reg
}

func worker(t testing.TB, addr string, reg *model.Registry, cfg queue.Config) (*queue.Worker, func()) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	cfg.Redis, cfg.Registry, cfg.Model = c, reg, "xgb"
	if cfg.Keys == nil {
		cfg.Keys = record.Keyring{testKey}
	}
	cfg.Log = t.Logf
	w, err := queue.New(cfg)
	servetest.Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	return w, func() { cancel(); <-done; c.Close() }
}

// push enqueues row i as an encrypted record under uri "r<i>", with entry id i+1 so a retried
// XADD cannot add it twice.
func (f *fixture) push(t testing.TB, ctx context.Context, i int) error {
	arrow, err := clusterserving.EncodeNdarray("t", f.x[i*features:(i+1)*features], []int32{features})
	servetest.Must(t, err)
	uri := fmt.Sprintf("r%d", i)
	rec, err := record.Seal(testKey, record.Request, stream, uri, arrow)
	servetest.Must(t, err)
	err = f.c.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: fmt.Sprintf("%d-1", i+1),
		Values: []string{"uri", uri, "data", base64.StdEncoding.EncodeToString(rec)}}).Err()
	if err != nil && strings.Contains(err.Error(), "equal or smaller") {
		return nil // an earlier try got through
	}
	return err
}

// take reads and deletes a result (as BigDL's query_and_delete does); "" if none yet.
func (f *fixture) take(t testing.TB, ctx context.Context, i int) (string, error) {
	key := queue.ResultKey(stream, fmt.Sprintf("r%d", i))
	v, err := f.c.HGet(ctx, key, "value").Result()
	if err == redis.Nil {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	// The result arrived. DEL is idempotent: retry it through a Redis restart (it may have
	// run with its reply lost), so that a result counted is never counted again.
	for i := 0; ; i++ {
		if err := f.c.Del(ctx, key).Err(); err == nil || i == 200 {
			return v, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check decrypts a result and compares it with XGBoost's prediction for row i.
func (f *fixture) check(t testing.TB, i int, v string) {
	t.Helper()
	if v == queue.NaN {
		t.Errorf("row %d answered NaN", i)
		return
	}
	b, err := base64.StdEncoding.DecodeString(v)
	servetest.Must(t, err)
	pt, err := record.Open(record.Keyring{testKey}, record.Result, stream, fmt.Sprintf("r%d", i), b)
	servetest.Must(t, err)
	out, err := clusterserving.DecodeResult(pt)
	servetest.Must(t, err)
	if len(out) != 1 || len(out[0].F32) != 1 || out[0].F32[0] != f.want[i] || len(out[0].Shape) != 0 {
		t.Errorf("row %d: result %+v, XGBoost predicts %v", i, out, f.want[i])
	}
}

// collect takes results 0..n-1 until all arrived, counting every one taken.
func (f *fixture) collect(t *testing.T, n int, timeout time.Duration) map[int]int {
	seen := map[int]int{}
	deadline := time.Now().Add(timeout)
	for len(seen) < n && time.Now().Before(deadline) {
		for i := range n {
			if seen[i] > 0 {
				continue
			}
			v, err := f.take(t, context.Background(), i)
			if v == "" {
				continue
			}
			if err != nil {
				t.Errorf("row %d: result read but not deleted: %v", i, err)
			}
			seen[i]++
			f.check(t, i, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) < n {
		t.Fatalf("%d of %d results arrived", len(seen), n)
	}
	return seen
}

// settled checks nothing is left: no pending entry, no result hash nobody took, no dead letter.
func (f *fixture) settled(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p, err := f.c.XPending(ctx, stream, queue.Group).Result()
	servetest.Must(t, err)
	keys, _ := f.c.Keys(ctx, queue.ResultPrefix+"*").Result()
	dead, _ := f.c.XLen(ctx, stream+":dead-letter").Result()
	if p.Count != 0 || len(keys) != 0 || dead != 0 {
		t.Errorf("left over: %d pending, results %v (doubled answers), %d dead letters", p.Count, keys, dead)
	}
}

func TestEncryptedRecordsAndBadOnes(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	// Entries written before any worker exists are served: the group starts at 0.
	for i := range 20 {
		servetest.Must(t, f.push(t, ctx, i))
	}
	plain, _ := clusterserving.EncodeNdarray("t", f.x[:features], []int32{features})
	moved, _ := record.Seal(testKey, record.Request, stream, "elsewhere", plain)
	bad := map[string][]string{
		"plain":   {"data", base64.StdEncoding.EncodeToString(plain)},
		"garbage": {"data", "%%% not base64"},
		"moved":   {"data", base64.StdEncoding.EncodeToString(moved)},
		"arrow":   {"data", base64.StdEncoding.EncodeToString([]byte("\xff\xff\xff\xff junk"))},
		"serde":   {"data", "eA==", "serde", "java"},
	}
	for uri, kv := range bad {
		servetest.Must(t, f.c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: append([]string{"uri", uri}, kv...)}).Err())
	}
	// The arrow case is encrypted so it reaches the Arrow decoder.
	_, stop := worker(t, f.redis.Addr(), registry(t, f.mf, nil), queue.Config{})
	defer stop()
	f.collect(t, 20, 30*time.Second)
	reasons := map[string]string{
		"plain": "plaintext record refused", "garbage": "data is not base64", "moved": "does not decrypt",
		"arrow": "plaintext record refused", "serde": `serde "java" is not supported`,
	}
	deadline := time.Now().Add(10 * time.Second)
	var dl []redis.XMessage
	for time.Now().Before(deadline) {
		dl, _ = f.c.XRange(ctx, stream+":dead-letter", "-", "+").Result()
		if len(dl) == len(bad) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(dl) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(bad))
	}
	for _, m := range dl {
		uri := m.Values["uri"].(string)
		if !strings.Contains(m.Values["reason"].(string), reasons[uri]) {
			t.Errorf("dead letter for %s: %q, want %q", uri, m.Values["reason"], reasons[uri])
		}
		if v, _ := f.c.HGet(ctx, queue.ResultKey(stream, uri), "value").Result(); v != queue.NaN {
			t.Errorf("result for %s: %q, want NaN", uri, v)
		}
	}
}

// TestMain lets the test binary run a worker as a separate process (to be killed).
func TestMain(m *testing.M) {
	if addr := os.Getenv("PPML_SERVE_TEST_WORKER"); addr != "" {
		runChildWorker(addr)
		return
	}
	os.Exit(m.Run())
}

func runChildWorker(addr string) {
	t := &testing.T{}
	mf, _ := servetest.XGBoostModel(t, features, 10, 3)
	reg := registry(t, mf, func(m model.Model) model.Model { return &slow{Model: m, delay: 30 * time.Millisecond} })
	c := redis.NewClient(&redis.Options{Addr: addr})
	w, err := queue.New(queue.Config{Redis: c, Registry: reg, Model: "xgb", Keys: record.Keyring{testKey}, Batch: 4, Consumer: "child"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w.Run(context.Background())
}

// TestWorkerKilledMidStream kills a worker process (SIGKILL) while it holds entries; another
// worker takes them over and every request is answered exactly once.
func TestWorkerKilledMidStream(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const n = 60
	for i := range n {
		servetest.Must(t, f.push(t, ctx, i))
	}
	exe, err := os.Executable()
	servetest.Must(t, err)
	child := exec.Command(exe, "-test.run=^$")
	child.Env = append(os.Environ(), "PPML_SERVE_TEST_WORKER="+f.redis.Addr())
	child.Stderr = os.Stderr
	servetest.Must(t, child.Start())
	// Wait until the child has answered some entries and holds others.
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := f.c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: queue.Group, Start: "-", End: "+", Count: 100, Consumer: "child"}).Result()
		answered, _ := f.c.Keys(ctx, queue.ResultPrefix+"*").Result()
		if err == nil && len(p) > 0 && len(answered) > 0 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the child worker never held entries")
		}
		time.Sleep(5 * time.Millisecond)
	}
	servetest.Must(t, child.Process.Kill())
	child.Wait()
	_, stop := worker(t, f.redis.Addr(), registry(t, f.mf, nil), queue.Config{ClaimIdle: 300 * time.Millisecond, ClaimEvery: 100 * time.Millisecond})
	seen := f.collect(t, n, 30*time.Second)
	stop()
	for i, c := range seen {
		if c != 1 {
			t.Errorf("row %d answered %d times", i, c)
		}
	}
	f.settled(t)
}

// TestSlowWorkerLosesEntries: a worker that is slow, not dead, has its entries taken over;
// when it finally answers it no longer owns them and writes nothing.
func TestSlowWorkerLosesEntries(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const n = 10
	for i := range n {
		servetest.Must(t, f.push(t, ctx, i))
	}
	gate := make(chan struct{})
	_, stopA := worker(t, f.redis.Addr(), registry(t, f.mf, func(m model.Model) model.Model { return &slow{Model: m, negate: true, gate: gate} }),
		queue.Config{Consumer: "slow", ClaimIdle: time.Hour})
	for {
		p, _ := f.c.XPending(ctx, stream, queue.Group).Result()
		if p != nil && p.Count == n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, stopB := worker(t, f.redis.Addr(), registry(t, f.mf, nil), queue.Config{ClaimIdle: 200 * time.Millisecond, ClaimEvery: 50 * time.Millisecond})
	f.collect(t, n, 30*time.Second) // check() fails on a negated (slow worker's) value
	close(gate)
	stopA() // drains: the slow worker answers now, and must write nothing
	stopB()
	f.settled(t)
}

// TestRedisRestartUnderLoad kills Redis (SIGKILL) and restarts it while requests flow; with
// its append-only file every request is answered exactly once.
func TestRedisRestartUnderLoad(t *testing.T) {
	f := setup(t)
	const n = 200
	_, stop := worker(t, f.redis.Addr(), registry(t, f.mf, nil), queue.Config{Block: 100 * time.Millisecond, ClaimIdle: time.Second, ClaimEvery: 200 * time.Millisecond})
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := f.push(t, ctx, i)
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				i-- // retry; the entry id makes a repeat harmless
			}
			if i == n/2 {
				f.redis.Kill()
				time.Sleep(200 * time.Millisecond)
				f.redis.Restart(t)
			}
		}
	}()
	seen := f.collect(t, n, 60*time.Second)
	wg.Wait()
	for i, c := range seen {
		if c != 1 {
			t.Errorf("row %d answered %d times", i, c)
		}
	}
	time.Sleep(300 * time.Millisecond)
	f.settled(t)
}

// TestDrainFinishesReadEntries stops a worker while its batch is in flight: Run returns
// only after answering what it read.
func TestDrainFinishesReadEntries(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for i := range 5 {
		servetest.Must(t, f.push(t, ctx, i))
	}
	_, stop := worker(t, f.redis.Addr(), registry(t, f.mf, func(m model.Model) model.Model { return &slow{Model: m, delay: 300 * time.Millisecond} }), queue.Config{})
	for {
		p, _ := f.c.XPending(ctx, stream, queue.Group).Result()
		if p != nil && p.Count > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	f.collect(t, 5, time.Second)
	f.settled(t)
}

// TestPoisonEntryIsDeadLettered: an entry delivered more than MaxDeliveries times (its
// workers kept dying) is answered NaN and dead-lettered instead of retried forever.
func TestPoisonEntryIsDeadLettered(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	servetest.Must(t, f.c.XGroupCreateMkStream(ctx, stream, queue.Group, "0").Err())
	servetest.Must(t, f.push(t, ctx, 0))
	servetest.Must(t, f.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: queue.Group, Consumer: "ghost", Streams: []string{stream, ">"}}).Err())
	for range 3 {
		servetest.Must(t, f.c.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: queue.Group, Consumer: "ghost", Messages: []string{"1-1"}}).Err())
	}
	_, stop := worker(t, f.redis.Addr(), registry(t, f.mf, nil), queue.Config{ClaimIdle: 10 * time.Millisecond, ClaimEvery: 10 * time.Millisecond, MaxDeliveries: 3})
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v, _ := f.c.HGet(ctx, queue.ResultKey(stream, "r0"), "value").Result(); v != "" {
			if v != queue.NaN {
				t.Fatalf("poison entry answered %q", v)
			}
			dl, _ := f.c.XRange(ctx, stream+":dead-letter", "-", "+").Result()
			if len(dl) != 1 || !strings.Contains(dl[0].Values["reason"].(string), "delivered 5 times") {
				t.Fatalf("dead letters %v", dl)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the poison entry was never answered")
}
