// Package queue is a Cluster Serving queue worker, wire-compatible with BigDL 2.x: requests
// are stream entries `XADD <stream> * uri <id> data <base64 Arrow>` read by the consumer
// group "serving" (created at 0 with MKSTREAM), results are `HSET cluster-serving_<stream>:<uri>
// value <base64 Arrow>` or "NaN".
//
// Unlike the original, an entry is acknowledged only together with its result: one Lua
// script, run atomically by Redis, checks that this worker still owns the entry, writes the
// result (and a dead-letter entry when the record was bad) and acknowledges it. A worker that
// dies leaves its entries pending; the others take them over with XAUTOCLAIM after ClaimIdle.
// A worker that was merely slow and lost its entries finds it no longer owns them and writes
// nothing, so each request gets exactly one result. An entry delivered MaxDeliveries times
// without an answer (it keeps killing workers) is answered "NaN" and dead-lettered, never
// retried forever.
//
// Records are ppml serving records (package serve/record) unless the job allows plaintext.
package queue

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/metrics"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/record"
)

// Names Cluster Serving fixes.
const (
	DefaultStream = "serving_stream"
	Group         = "serving"
	ResultPrefix  = "cluster-serving_"
	// NaN is the result of a request that could not be answered.
	NaN = "NaN"
)

// ResultKey is the hash a request's result is written to.
func ResultKey(stream, uri string) string { return ResultPrefix + stream + ":" + uri }

// Config configures a worker.
type Config struct {
	Redis redis.UniversalClient
	// Stream is the request stream (Cluster Serving's job name); default serving_stream.
	Stream string
	// Consumer names this worker in the group; default host-pid-random.
	Consumer string
	// Model and Version pick the registry entry the queue feeds (version "": the default).
	Registry       *model.Registry
	Model, Version string
	// Keys decrypt request records and seal results; AllowPlaintext accepts records that
	// are not ppml serving records (and answers them in plaintext).
	Keys           record.Keyring
	AllowPlaintext bool
	// Batch is the most entries read at once (default 64); Block how long a read waits
	// (default 1s).
	Batch int
	Block time.Duration
	// ClaimIdle is how long an entry stays pending with a silent worker before another
	// takes it over (default 30s); ClaimEvery how often a worker looks (default ClaimIdle/4).
	ClaimIdle, ClaimEvery time.Duration
	// MaxDeliveries is how often an entry is delivered before it is dead-lettered (default 3).
	MaxDeliveries int64
	// ResultTTL, if set, expires result hashes nobody collected.
	ResultTTL time.Duration
	// DeadLetter is the dead-letter stream (default <stream>:dead-letter), capped at about
	// DeadLetterMax entries (default 10000).
	DeadLetter    string
	DeadLetterMax int64
	Metrics       *metrics.Metrics
	// Log receives operational lines (never record contents); nil discards.
	Log func(format string, args ...any)
}

// Worker serves one stream.
type Worker struct {
	cfg Config
}

// New checks the configuration and fills in defaults.
func New(cfg Config) (*Worker, error) {
	if cfg.Redis == nil || cfg.Registry == nil {
		return nil, errors.New("queue worker: Redis and Registry are required")
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		var r [4]byte
		rand.Read(r[:])
		cfg.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
	if len(cfg.Keys) == 0 && !cfg.AllowPlaintext {
		return nil, errors.New("queue worker: no record key and plaintext not allowed: every record would be refused")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Block <= 0 {
		cfg.Block = time.Second
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = 30 * time.Second
	}
	if cfg.ClaimEvery <= 0 {
		cfg.ClaimEvery = cfg.ClaimIdle / 4
	}
	if cfg.MaxDeliveries <= 0 {
		cfg.MaxDeliveries = 3
	}
	if cfg.DeadLetter == "" {
		cfg.DeadLetter = cfg.Stream + ":dead-letter"
	}
	if cfg.DeadLetterMax <= 0 {
		cfg.DeadLetterMax = 10000
	}
	if _, err := cfg.Registry.Get(cfg.Model, cfg.Version); err != nil {
		return nil, fmt.Errorf("queue worker: %w", err)
	}
	return &Worker{cfg: cfg}, nil
}

// Consumer is the worker's consumer name.
func (w *Worker) Consumer() string { return w.cfg.Consumer }

func (w *Worker) logf(format string, args ...any) {
	if w.cfg.Log != nil {
		w.cfg.Log(format, args...)
	}
}

// answer is the atomic write of a result: only while this consumer still owns the entry,
// set the result (ARGV[4], "" for none), expire it after ARGV[7] ms (0: never), add a
// dead-letter entry when ARGV[5] (the reason) is set, and acknowledge the entry.
var answer = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'value', ARGV[4])
  if tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[7]) end
end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'stream', KEYS[1], 'id', ARGV[2], 'uri', ARGV[6], 'consumer', ARGV[3], 'reason', ARGV[5])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// ensureGroup creates the consumer group at 0 (every entry, including those written before
// the first worker started), creating the stream if needed.
func (w *Worker) ensureGroup(ctx context.Context) error {
	err := w.cfg.Redis.XGroupCreateMkStream(ctx, w.cfg.Stream, Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// Run serves the stream until ctx is cancelled, then finishes the entries it has read
// (graceful drain) and returns nil. Redis being unreachable is retried with backoff.
func (w *Worker) Run(ctx context.Context) error {
	backoff := newBackoff()
	for {
		if err := w.ensureGroup(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return nil
		} else {
			w.logf("queue %s: creating the consumer group: %v (retrying)", w.cfg.Stream, err)
			if !backoff.wait(ctx) {
				return nil
			}
		}
	}
	backoff.reset()
	w.logf("queue %s: consumer %s serving model %s", w.cfg.Stream, w.cfg.Consumer, w.cfg.Model)
	nextClaim := time.Now()
	for ctx.Err() == nil {
		if time.Now().After(nextClaim) {
			if err := w.claim(ctx); err != nil && ctx.Err() == nil {
				w.logf("queue %s: reclaiming pending entries: %v", w.cfg.Stream, err)
			}
			w.observe(ctx)
			nextClaim = time.Now().Add(w.cfg.ClaimEvery)
		}
		block := min(w.cfg.Block, time.Until(nextClaim))
		res, err := w.cfg.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: Group, Consumer: w.cfg.Consumer, Streams: []string{w.cfg.Stream, ">"},
			Count: int64(w.cfg.Batch), Block: max(block, time.Millisecond),
		}).Result()
		if errors.Is(err, redis.Nil) {
			backoff.reset()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// Redis lost the stream (restarted without persistence, or it was deleted).
				w.ensureGroup(ctx)
			}
			w.logf("queue %s: reading: %v (retrying)", w.cfg.Stream, err)
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		for _, s := range res {
			w.process(s.Messages, nil)
		}
	}
	return nil
}

// claim takes over entries other consumers left pending for ClaimIdle.
func (w *Worker) claim(ctx context.Context) error {
	start := "0-0"
	for range 16 { // at most 16 × Batch entries per round; the next round continues
		msgs, next, err := w.cfg.Redis.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: w.cfg.Stream, Group: Group, MinIdle: w.cfg.ClaimIdle, Start: start,
			Count: int64(w.cfg.Batch), Consumer: w.cfg.Consumer,
		}).Result()
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			w.logf("queue %s: took over %d pending entries", w.cfg.Stream, len(msgs))
			deliveries, err := w.deliveries(ctx, msgs)
			if err != nil {
				return err
			}
			w.process(msgs, deliveries)
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
	return nil
}

// deliveries looks up how often each claimed entry has been delivered.
func (w *Worker) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int64, error) {
	p, err := w.cfg.Redis.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: w.cfg.Stream, Group: Group, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID,
		Count: int64(len(msgs)) + 1, Consumer: w.cfg.Consumer,
	}).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(p))
	for _, e := range p {
		out[e.ID] = e.RetryCount
	}
	return out, nil
}

func (w *Worker) observe(ctx context.Context) {
	gs, err := w.cfg.Redis.XInfoGroups(ctx, w.cfg.Stream).Result()
	if err != nil {
		return
	}
	for _, g := range gs {
		if g.Name == Group {
			w.cfg.Metrics.Queue(w.cfg.Stream, g.Lag, g.Pending)
		}
	}
}

// outcome is what a worker writes for one entry.
type outcome struct {
	id, uri string
	value   string // the result, NaN, or "" (no uri to answer)
	reason  string // dead-letter reason, "" for none
}

// process answers a batch of entries: each is decoded and run concurrently (so the model's
// dynamic batcher can join them), then every answer is written. The work runs to the end
// even if the worker is being stopped: these entries were read, and a drain finishes them.
func (w *Worker) process(msgs []redis.XMessage, deliveries map[string]int64) {
	ctx := context.Background()
	out := make([]outcome, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		if deliveries != nil && deliveries[m.ID] > w.cfg.MaxDeliveries {
			uri, _ := m.Values["uri"].(string)
			value := NaN
			if uri == "" {
				value = ""
			}
			out[i] = outcome{id: m.ID, uri: uri, value: value,
				reason: fmt.Sprintf("delivered %d times without an answer (the workers serving it stopped)", deliveries[m.ID])}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = w.serve(ctx, m)
		}()
	}
	wg.Wait()
	w.write(out)
}

// serve decodes, runs and encodes one entry.
func (w *Worker) serve(ctx context.Context, m redis.XMessage) outcome {
	start := time.Now()
	o := outcome{id: m.ID}
	uri, _ := m.Values["uri"].(string)
	o.uri = uri
	fail := func(kind, reason string) outcome {
		o.value, o.reason = NaN, reason
		if uri == "" {
			o.value = ""
		}
		w.cfg.Metrics.Request("queue", w.cfg.Model, kind, time.Since(start))
		w.cfg.Metrics.DeadLetter(w.cfg.Stream)
		return o
	}
	if uri == "" {
		return fail("invalid", "the entry has no uri field")
	}
	if len(uri) >= record.MaxLen {
		return fail("invalid", "the entry's uri is longer than 65535 bytes")
	}
	data, _ := m.Values["data"].(string)
	serde, _ := m.Values["serde"].(string)
	inst, key, err := w.decode(uri, data, serde)
	if err != nil {
		return fail("invalid", err.Error())
	}
	e, err := w.cfg.Registry.Get(w.cfg.Model, w.cfg.Version)
	if err != nil {
		return fail("not_found", err.Error())
	}
	md := e.Metadata()
	in, batched, err := clusterserving.ToInputs(&md, inst)
	if err != nil {
		return fail("invalid", err.Error())
	}
	outputs, err := e.Infer(ctx, in)
	if err != nil {
		return fail("error", "inference: "+err.Error())
	}
	res, err := clusterserving.EncodeResult(outputs, batched)
	if err == nil && key != nil {
		res, err = record.Seal(key, record.Result, w.cfg.Stream, uri, res)
	}
	if err != nil {
		return fail("error", "encoding the result: "+err.Error())
	}
	o.value = base64.StdEncoding.EncodeToString(res)
	w.cfg.Metrics.Request("queue", w.cfg.Model, "ok", time.Since(start))
	return o
}

// maxDataLen bounds an entry's data field: a request record of at most
// clusterserving.MaxRecordBytes, sealed, in base64.
var maxDataLen = base64.StdEncoding.EncodedLen(clusterserving.MaxRecordBytes + record.Overhead)

// decode turns an entry's data into an instance, decrypting a ppml serving record. It
// returns the record's key (nil for plaintext) to seal the result with.
func (w *Worker) decode(uri, data, serde string) (clusterserving.Instance, *record.Key, error) {
	if data == "" {
		return nil, nil, errors.New("the entry has no data field")
	}
	if serde != "" && serde != "stream" {
		return nil, nil, fmt.Errorf("serde %q is not supported (only the default Arrow encoding and \"stream\" JSON instances)", clip(serde))
	}
	// Bound the entry before decoding it: Redis holds values of up to 512 MB.
	if len(data) > maxDataLen {
		return nil, nil, fmt.Errorf("data is %d bytes, more than the %d bytes of a record of at most %d bytes in base64", len(data), maxDataLen, clusterserving.MaxRecordBytes)
	}
	var raw []byte
	if serde == "stream" && strings.HasPrefix(strings.TrimSpace(data), "{") {
		raw = []byte(data) // the HTTP frontend's JSON instances, sent as they are
	} else {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, nil, fmt.Errorf("data is not base64: %v", err)
		}
		raw = b
	}
	var key *record.Key
	if record.IsRecord(raw) {
		pt, err := record.Open(w.cfg.Keys, record.Request, w.cfg.Stream, uri, raw)
		if err != nil {
			return nil, nil, err
		}
		key, raw = record.KeyFor(w.cfg.Keys, raw), pt
	} else if !w.cfg.AllowPlaintext {
		return nil, nil, errors.New("plaintext record refused: this job accepts only ppml serving records (docs/formats/serving-record.md)")
	}
	if serde == "stream" {
		insts, err := clusterserving.DecodeInstances(raw)
		if err != nil {
			return nil, nil, err
		}
		return insts[0], key, nil
	}
	inst, err := clusterserving.DecodeArrow(raw)
	return inst, key, err
}

// write records every outcome with the answer script, pipelined, retrying while Redis is
// unreachable. The script's ownership check makes a retry after a lost reply harmless.
func (w *Worker) write(out []outcome) {
	backoff := newBackoff()
	ttl := w.cfg.ResultTTL.Milliseconds()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		pipe := w.cfg.Redis.Pipeline()
		for _, o := range out {
			answer.Eval(ctx, pipe, []string{w.cfg.Stream, ResultKey(w.cfg.Stream, o.uri), w.cfg.DeadLetter},
				Group, o.id, w.cfg.Consumer, o.value, o.reason, o.uri, ttl, w.cfg.DeadLetterMax)
		}
		cmds, err := pipe.Exec(ctx)
		cancel()
		if err == nil {
			lost := 0
			for _, c := range cmds {
				if n, _ := c.(*redis.Cmd).Int64(); n == 0 {
					lost++
				}
			}
			if lost > 0 {
				w.logf("queue %s: %d entries were taken over by another worker before this one answered; their answers were dropped", w.cfg.Stream, lost)
			}
			for _, o := range out {
				if o.reason != "" {
					w.logf("queue %s: entry %s dead-lettered: %s", w.cfg.Stream, o.id, o.reason)
				}
			}
			return
		}
		w.logf("queue %s: writing %d results: %v (retrying)", w.cfg.Stream, len(out), err)
		if attempt > 1000 {
			w.logf("queue %s: giving up on %d results; their entries stay pending for another worker", w.cfg.Stream, len(out))
			return
		}
		backoff.wait(context.Background())
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }
func (b *backoff) reset()  { b.d = 50 * time.Millisecond }

// wait sleeps the current delay (doubling it up to 2s); false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, 2*time.Second)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
