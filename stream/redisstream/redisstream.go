// Package redisstream is the stream.Log on Redis Streams: each partition
// of a stream is a Redis stream "NAME:P"; a pipeline's group is a consumer
// group on its input partitions. Tasks are owned through leases with a
// fencing epoch: reads (XREADGROUP) and commits run in MULTI/EXEC under
// WATCH of the epochs, so a worker that lost a task can neither read nor
// commit for it; a commit adds the outputs (XADD), stores the sealed
// snapshot and acknowledges the inputs (XACK) in one transaction. A worker
// taking a task over claims the entries the previous owner read but never
// committed (XAUTOCLAIM) and processes them first, in order.
package redisstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/stream"
)

// Options configure the log.
type Options struct {
	// LeaseTTL is how long a dead worker holds its tasks. Default 10s.
	LeaseTTL time.Duration
	// BatchSize bounds the entries one read returns. Default 500.
	BatchSize int64
}

// Log is a stream.Log on one Redis server.
type Log struct {
	rdb  redis.UniversalClient
	opts Options
}

// New returns a Log using rdb.
func New(rdb redis.UniversalClient, opts Options) *Log {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	return &Log{rdb: rdb, opts: opts}
}

// Key is the Redis key of a stream partition.
func Key(streamName string, partition int) string { return fmt.Sprintf("%s:%d", streamName, partition) }

// Field names of an entry: the record, and the output id.
const (
	FieldRecord = "r"
	FieldID     = "id"
)

// Append adds records to a partition (producers).
func Append(ctx context.Context, rdb redis.UniversalClient, streamName string, partition int, values ...[]byte) error {
	pipe := rdb.Pipeline()
	for _, v := range values {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: Key(streamName, partition), Values: []any{FieldRecord, v}})
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Read returns the records of a partition (consumers; every entry in
// Redis is committed).
func Read(ctx context.Context, rdb redis.UniversalClient, streamName string, partition int) ([][]byte, error) {
	msgs, err := rdb.XRange(ctx, Key(streamName, partition), "-", "+").Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		s, _ := m.Values[FieldRecord].(string)
		out = append(out, []byte(s))
	}
	return out, nil
}

type session struct {
	l      *Log
	rdb    redis.UniversalClient
	topo   stream.Topology
	prefix string
	all    []stream.TaskID

	mu      sync.Mutex // owned is shared with the lease renewer
	owned   map[stream.TaskID]*ownedTask
	lost    map[stream.TaskID]bool // leases or epochs lost: revoke
	release map[stream.TaskID]bool // give away after the next commit
	reset   bool                   // re-assign every owned task (a commit failed)

	lastBalance time.Time
	stop        chan struct{}
	done        chan struct{}
}

type ownedTask struct {
	epoch   int64
	pending []redis.XMessage // claimed from a previous owner: delivered first
	unacked []string         // ids delivered since the last commit
	fresh   bool             // not yet reported as Assigned
	snap    []byte
	resume  string
}

// Join implements stream.Log.
func (l *Log) Join(ctx context.Context, t stream.Topology) (stream.Session, error) {
	s := &session{l: l, rdb: l.rdb, topo: t, prefix: "ppml:{" + t.Group + "}:",
		owned: map[stream.TaskID]*ownedTask{}, lost: map[stream.TaskID]bool{}, release: map[stream.TaskID]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, in := range t.Inputs {
		for p := 0; p < in.Partitions; p++ {
			id := stream.TaskID{Stream: in.Name, Partition: p}
			s.all = append(s.all, id)
			err := l.rdb.XGroupCreateMkStream(ctx, Key(in.Name, p), t.Group, "0").Err()
			if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
				return nil, fmt.Errorf("redis: create consumer group %s on %s: %w", t.Group, Key(in.Name, p), err)
			}
		}
	}
	if err := s.heartbeat(ctx); err != nil {
		return nil, fmt.Errorf("redis: join group %s: %w", t.Group, err)
	}
	go s.renew()
	return s, nil
}

func (s *session) leaseKey(t stream.TaskID) string { return s.prefix + "lease:" + t.String() }
func (s *session) epochKey(t stream.TaskID) string { return s.prefix + "epoch:" + t.String() }
func (s *session) snapKey(t stream.TaskID) string  { return s.prefix + "snap:" + t.String() }
func (s *session) memberKey(w string) string       { return s.prefix + "member:" + w }

// renewScript extends a lease only if this worker still holds it.
var renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)

// releaseScript deletes a lease only if this worker holds it.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)

func (s *session) heartbeat(ctx context.Context) error {
	ttl := s.l.opts.LeaseTTL
	if err := s.rdb.Set(ctx, s.memberKey(s.topo.Worker), time.Now().UnixMilli(), ttl).Err(); err != nil {
		return err
	}
	s.mu.Lock()
	ids := make([]stream.TaskID, 0, len(s.owned))
	for id := range s.owned {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		n, err := renewScript.Run(ctx, s.rdb, []string{s.leaseKey(id)}, s.topo.Worker, ttl.Milliseconds()).Int()
		if err != nil {
			return err
		}
		if n == 0 {
			s.mu.Lock()
			s.lost[id] = true
			s.mu.Unlock()
		}
	}
	return nil
}

func (s *session) renew() {
	defer close(s.done)
	t := time.NewTicker(s.l.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.l.opts.LeaseTTL/3)
			s.heartbeat(ctx) // errors: the lease runs out and the epoch fences us
			cancel()
		}
	}
}

// desired deals the tasks round-robin over the live members, sorted.
func (s *session) desired(ctx context.Context) (map[stream.TaskID]bool, error) {
	var names []string
	iter := s.rdb.Scan(ctx, 0, s.prefix+"member:*", 100).Iterator()
	for iter.Next(ctx) {
		names = append(names, strings.TrimPrefix(iter.Val(), s.prefix+"member:"))
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	sort.Strings(names)
	me := sort.SearchStrings(names, s.topo.Worker)
	if me == len(names) || names[me] != s.topo.Worker {
		names = append(names, s.topo.Worker)
		sort.Strings(names)
		me = sort.SearchStrings(names, s.topo.Worker)
	}
	out := map[stream.TaskID]bool{}
	for i, t := range s.all {
		if i%len(names) == me {
			out[t] = true
		}
	}
	return out, nil
}

func (s *session) Poll(ctx context.Context, max time.Duration) (*stream.Batch, error) {
	deadline := time.Now().Add(max)
	b := &stream.Batch{}
	s.mu.Lock()
	for id := range s.lost {
		if s.owned[id] != nil {
			delete(s.owned, id)
			b.Revoked = append(b.Revoked, id)
		}
	}
	clear(s.lost)
	if s.reset {
		s.reset = false
		for id := range s.owned {
			b.Revoked = append(b.Revoked, id)
		}
		s.mu.Unlock()
		for id := range s.owned {
			if err := s.load(ctx, id, s.owned[id]); err != nil {
				s.mu.Lock()
				s.reset = true
				s.mu.Unlock()
				return nil, err
			}
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	if time.Since(s.lastBalance) > s.l.opts.LeaseTTL/3 {
		if err := s.balance(ctx, b); err != nil {
			return nil, err
		}
		s.lastBalance = time.Now()
	}
	for id, o := range s.owned {
		if o.fresh {
			o.fresh = false
			b.Assigned = append(b.Assigned, stream.Assignment{Task: id, Snapshot: o.snap, Resume: o.resume})
			o.snap = nil
		}
	}
	sort.Slice(b.Assigned, func(i, j int) bool { return b.Assigned[i].Task.String() < b.Assigned[j].Task.String() })
	for {
		if err := s.read(ctx, b); err != nil {
			return nil, err
		}
		if len(b.Records) > 0 || len(b.Assigned) > 0 || len(b.Revoked) > 0 {
			return b, nil
		}
		// Redis blocks in whole milliseconds, and BLOCK 0 is for ever: less
		// than one left is none.
		wait := time.Until(deadline)
		if wait < time.Millisecond || ctx.Err() != nil {
			return b, nil
		}
		if err := s.wait(ctx, min(wait, 100*time.Millisecond)); err != nil {
			return nil, err
		}
	}
}

// balance releases tasks another member should have (they were committed
// just before: see Commit) and acquires free ones this member should have.
func (s *session) balance(ctx context.Context, b *stream.Batch) error {
	want, err := s.desired(ctx)
	if err != nil {
		return err
	}
	for id, o := range s.owned {
		if want[id] {
			continue
		}
		if len(o.unacked) == 0 && len(o.pending) == 0 {
			// Nothing read since the last commit: hand it over now.
			if err := releaseScript.Run(ctx, s.rdb, []string{s.leaseKey(id)}, s.topo.Worker).Err(); err != nil {
				return err
			}
			s.mu.Lock()
			delete(s.owned, id)
			s.mu.Unlock()
			b.Revoked = append(b.Revoked, id)
			continue
		}
		s.release[id] = true // after the next commit
	}
	for _, id := range s.all {
		if !want[id] || s.owned[id] != nil {
			continue
		}
		ok, err := s.rdb.SetNX(ctx, s.leaseKey(id), s.topo.Worker, s.l.opts.LeaseTTL).Result()
		if err != nil {
			return err
		}
		if !ok {
			continue // still held by its previous owner: it releases it after a commit, or the lease runs out
		}
		epoch, err := s.rdb.Incr(ctx, s.epochKey(id)).Result()
		if err != nil {
			return err
		}
		o := &ownedTask{epoch: epoch}
		if err := s.load(ctx, id, o); err != nil {
			return err
		}
		s.mu.Lock()
		s.owned[id] = o
		s.mu.Unlock()
	}
	return nil
}

// load reads a task's snapshot and claims every entry read but not
// acknowledged in its partition (by a dead owner, or by us before a
// failed commit): they come first, in order.
func (s *session) load(ctx context.Context, id stream.TaskID, o *ownedTask) error {
	vals, err := s.rdb.HMGet(ctx, s.snapKey(id), "next", "data").Result()
	if err != nil {
		return err
	}
	o.snap, o.resume = nil, ""
	if n, ok := vals[0].(string); ok {
		o.resume = n
		d, _ := vals[1].(string)
		o.snap = []byte(d)
	}
	o.pending, o.unacked, o.fresh = nil, nil, true
	start := "0-0"
	for {
		msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: Key(id.Stream, id.Partition), Group: s.topo.Group,
			Start: start, Count: 1000, Consumer: s.topo.Worker}).Result()
		if err != nil {
			return fmt.Errorf("claim the pending entries of %s: %w", id, err)
		}
		for _, m := range msgs {
			if o.resume != "" && !after(m.ID, o.resume) {
				// Committed (acknowledged with the snapshot) but still
				// pending: cannot happen with MULTI/EXEC, handled anyway.
				s.rdb.XAck(ctx, Key(id.Stream, id.Partition), s.topo.Group, m.ID)
				continue
			}
			o.pending = append(o.pending, m)
		}
		if next == "0-0" || len(msgs) == 0 && next == start {
			break
		}
		start = next
	}
	return nil
}

// after reports whether entry id a comes after b.
func after(a, b string) bool {
	var ams, aseq, bms, bseq uint64
	fmt.Sscanf(a, "%d-%d", &ams, &aseq)
	fmt.Sscanf(b, "%d-%d", &bms, &bseq)
	return ams > bms || ams == bms && aseq > bseq
}

// read delivers claimed entries, then new ones read under WATCH of the
// owned tasks' epochs: a worker fenced out of a task reads nothing of it.
func (s *session) read(ctx context.Context, b *stream.Batch) error {
	ids := make([]stream.TaskID, 0, len(s.owned))
	for id, o := range s.owned {
		if len(o.pending) > 0 {
			for _, m := range o.pending {
				s.deliver(b, id, o, m)
			}
			o.pending = nil
		}
		ids = append(ids, id)
	}
	if len(b.Records) > 0 || len(ids) == 0 {
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	keys := make([]string, len(ids))
	streams := make([]string, 0, 2*len(ids))
	for i, id := range ids {
		keys[i] = s.epochKey(id)
		streams = append(streams, Key(id.Stream, id.Partition))
	}
	for range ids {
		streams = append(streams, ">")
	}
	var res []redis.XStream
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		if err := s.checkEpochs(ctx, tx, ids, keys); err != nil {
			return err
		}
		cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: s.topo.Group, Consumer: s.topo.Worker, Streams: streams, Count: s.l.opts.BatchSize, Block: -1})
			return nil
		})
		if err != nil && err != redis.Nil {
			return err
		}
		res, _ = cmds[0].(*redis.XStreamSliceCmd).Result()
		return nil
	}, keys...)
	if errors.Is(err, redis.TxFailedErr) || errors.Is(err, stream.ErrFenced) {
		return s.findLost(ctx, b)
	}
	if err != nil {
		return err
	}
	for _, xs := range res {
		for _, id := range ids {
			if Key(id.Stream, id.Partition) == xs.Stream {
				o := s.owned[id]
				for _, m := range xs.Messages {
					s.deliver(b, id, o, m)
				}
			}
		}
	}
	return nil
}

func (s *session) deliver(b *stream.Batch, id stream.TaskID, o *ownedTask, m redis.XMessage) {
	v, _ := m.Values[FieldRecord].(string)
	b.Records = append(b.Records, stream.Record{Task: id, Value: []byte(v), Next: m.ID})
	o.unacked = append(o.unacked, m.ID)
}

func (s *session) checkEpochs(ctx context.Context, tx *redis.Tx, ids []stream.TaskID, keys []string) error {
	vals, err := tx.MGet(ctx, keys...).Result()
	if err != nil {
		return err
	}
	for i, v := range vals {
		if fmt.Sprint(v) != fmt.Sprint(s.owned[ids[i]].epoch) {
			return stream.ErrFenced
		}
	}
	return nil
}

// findLost revokes the tasks whose epoch moved on.
func (s *session) findLost(ctx context.Context, b *stream.Batch) error {
	for id, o := range s.owned {
		e, err := s.rdb.Get(ctx, s.epochKey(id)).Int64()
		if err != nil && err != redis.Nil {
			return err
		}
		if e != o.epoch {
			s.mu.Lock()
			delete(s.owned, id)
			s.mu.Unlock()
			b.Revoked = append(b.Revoked, id)
		}
	}
	return nil
}

// wait blocks until an owned partition may have new entries.
func (s *session) wait(ctx context.Context, d time.Duration) error {
	if len(s.owned) == 0 {
		sleepCtx(ctx, d)
		return nil
	}
	var streams []string
	for id := range s.owned {
		streams = append(streams, Key(id.Stream, id.Partition))
	}
	for range s.owned {
		streams = append(streams, "$")
	}
	err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: 1, Block: d}).Err()
	if err == redis.Nil || ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *session) Commit(ctx context.Context, tasks []stream.TaskCommit) error {
	if len(tasks) == 0 {
		return nil
	}
	ids := make([]stream.TaskID, len(tasks))
	keys := make([]string, len(tasks))
	for i, tc := range tasks {
		if s.owned[tc.Task] == nil {
			s.reset = true
			return fmt.Errorf("redis: task %s: %w", tc.Task, stream.ErrFenced)
		}
		ids[i], keys[i] = tc.Task, s.epochKey(tc.Task)
	}
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		if err := s.checkEpochs(ctx, tx, ids, keys); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, tc := range tasks {
				for _, o := range tc.Outputs {
					p.XAdd(ctx, &redis.XAddArgs{Stream: Key(o.Stream, o.Partition), Values: []any{FieldRecord, o.Value, FieldID, o.ID}})
				}
				p.HSet(ctx, s.snapKey(tc.Task), "next", tc.Next, "data", tc.Snapshot)
				if un := s.owned[tc.Task].unacked; len(un) > 0 {
					p.XAck(ctx, Key(tc.Task.Stream, tc.Task.Partition), s.topo.Group, un...)
				}
			}
			return nil
		})
		return err
	}, keys...)
	if err != nil {
		// A transaction that may or may not have run: start every task
		// over from what Redis holds.
		s.reset = true
		if errors.Is(err, redis.TxFailedErr) || errors.Is(err, stream.ErrFenced) {
			return fmt.Errorf("redis: %w", stream.ErrFenced)
		}
		return fmt.Errorf("redis: commit: %w", err)
	}
	for _, tc := range tasks {
		s.owned[tc.Task].unacked = nil
	}
	// Tasks another member should have are handed over now, committed.
	if len(s.release) > 0 {
		for id := range s.release {
			if s.owned[id] != nil {
				releaseScript.Run(ctx, s.rdb, []string{s.leaseKey(id)}, s.topo.Worker)
				s.mu.Lock()
				delete(s.owned, id)
				s.lost[id] = true // reported as Revoked by the next Poll
				s.mu.Unlock()
			}
		}
		clear(s.release)
	}
	return nil
}

func (s *session) Close(ctx context.Context) error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	for id := range s.owned {
		releaseScript.Run(ctx, s.rdb, []string{s.leaseKey(id)}, s.topo.Worker)
	}
	s.owned = map[stream.TaskID]*ownedTask{}
	return s.rdb.Del(ctx, s.memberKey(s.topo.Worker)).Err()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
