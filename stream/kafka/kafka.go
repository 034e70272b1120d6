// Package kafka is the stream.Log on Apache Kafka (and compatible brokers)
// through franz-go: each stream is a topic; a pipeline's group is a
// consumer group; each worker is a transactional producer (transactional
// id GROUP-WORKER, static group member WORKER) in a GroupTransactSession.
//
// A commit is one Kafka transaction: the outputs of every task, each
// task's sealed snapshot in the compacted topic GROUP-state (one partition
// per task), and the consumed offsets. Consumers of the outputs read with
// isolation level read_committed and see a checkpoint whole or not at all.
// Rebalances are blocked while a checkpoint's records are being processed
// (BlockRebalanceOnPoll) and allowed after each commit, so moving a task
// loses no work; a rebalance that cannot wait (a lost session) aborts the
// transaction and every task restarts from its last snapshot. A worker
// restarted under the same name fences its predecessor's transaction at
// once (InitProducerID) and takes its place in the group (static
// membership).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ppml/ppml/stream"
)

// Options configure the log.
type Options struct {
	Brokers []string
	// SessionTimeout is how long a dead worker holds its tasks. Default 10s.
	SessionTimeout time.Duration
	// TransactionTimeout bounds how long a dead worker's open transaction
	// blocks read_committed consumers of what it wrote. Default 30s.
	TransactionTimeout time.Duration
	// ReplicationFactor of topics the log creates; -1 uses the broker's default.
	ReplicationFactor int16
	// Extra client options (TLS, SASL).
	ClientOpts []kgo.Opt
}

// Log is a stream.Log on a Kafka cluster.
type Log struct{ opts Options }

// New returns a Log.
func New(opts Options) *Log {
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.TransactionTimeout <= 0 {
		opts.TransactionTimeout = 30 * time.Second
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = -1
	}
	return &Log{opts: opts}
}

// StateTopic is the compacted topic of a group's snapshots.
func StateTopic(group string) string { return group + "-state" }

// CreateTopic makes a topic with n partitions if it is missing.
func CreateTopic(ctx context.Context, cl *kgo.Client, topic string, n int, rf int16, configs map[string]*string) error {
	res, err := kadm.NewClient(cl).CreateTopics(ctx, int32(n), rf, configs, topic)
	if err != nil {
		return fmt.Errorf("kafka: create topic %s: %w", topic, err)
	}
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", topic, r.Err)
		}
	}
	return nil
}

// Append produces records to a partition (producers).
func Append(ctx context.Context, cl *kgo.Client, topic string, partition int, values ...[]byte) error {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(partition), Value: v}
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// Read returns the committed records of a partition (consumers read with
// isolation level read_committed).
func Read(ctx context.Context, brokers []string, topic string, partition int, extra ...kgo.Opt) ([][]byte, error) {
	var out [][]byte
	_, err := readPartition(ctx, brokers, topic, int32(partition), 0, extra, func(r *kgo.Record) { out = append(out, r.Value) })
	return out, err
}

// readPartition reads a partition from offset to its last stable offset.
// Transaction markers are read too (they take offsets) so that the end is
// recognised; only data records reach fn.
func readPartition(ctx context.Context, brokers []string, topic string, partition int32, from int64, extra []kgo.Opt, fn func(*kgo.Record)) (int64, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted())}, extra...)
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok || errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
		return 0, nil // no such topic yet: nothing to read
	}
	if end.Err != nil {
		return 0, fmt.Errorf("kafka: end offset of %s/%d: %w", topic, partition, end.Err)
	}
	if end.Offset <= from {
		return end.Offset, nil
	}
	cl, err := kgo.NewClient(append(opts, kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}))...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	last := from - 1
	quiet := 0
	for last < end.Offset-1 {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("kafka: read %s/%d: %w", topic, partition, err)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			last = r.Offset
			if r.Offset < end.Offset && !r.Attrs.IsControl() {
				fn(r)
			}
		})
		if n == 0 {
			// The rest below the end is records of aborted transactions,
			// which read_committed never returns.
			if quiet++; quiet >= 5 {
				break
			}
		} else {
			quiet = 0
		}
	}
	return end.Offset, nil
}

type session struct {
	l     *Log
	topo  stream.Topology
	ts    *kgo.GroupTransactSession
	index map[stream.TaskID]int32 // task → partition of the state topic

	mu       sync.Mutex
	fetched  map[stream.TaskID]int64 // assigned, offsets fetched: committed offset (-1: none)
	revoked  []stream.TaskID
	blocked  bool // a rebalance waits for our commit
	owned    map[stream.TaskID]bool
	inTxn    bool
	polled   bool // records polled since the last commit
	reset    bool
	opts     []kgo.Opt // the transactional client's, for a new client (Commit)
	stateBuf map[stream.TaskID][]byte
}

// Join implements stream.Log.
func (l *Log) Join(ctx context.Context, t stream.Topology) (stream.Session, error) {
	s := &session{l: l, topo: t, index: map[stream.TaskID]int32{}, fetched: map[stream.TaskID]int64{}, owned: map[stream.TaskID]bool{}}
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(l.opts.Brokers...)}, l.opts.ClientOpts...)...)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	var topics []string
	n := 0
	for _, in := range t.Inputs {
		topics = append(topics, in.Name)
		for p := 0; p < in.Partitions; p++ {
			s.index[stream.TaskID{Stream: in.Name, Partition: p}] = int32(n)
			n++
		}
	}
	for _, sp := range append(append([]stream.StreamSpec(nil), t.Inputs...), t.Outputs...) {
		if err := CreateTopic(ctx, admin, sp.Name, sp.Partitions, l.opts.ReplicationFactor, nil); err != nil {
			return nil, err
		}
	}
	compact := "compact"
	if err := CreateTopic(ctx, admin, StateTopic(t.Group), n, l.opts.ReplicationFactor, map[string]*string{"cleanup.policy": &compact}); err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(l.opts.Brokers...),
		kgo.TransactionalID(t.Group + "-" + t.Worker),
		kgo.TransactionTimeout(l.opts.TransactionTimeout),
		kgo.ConsumerGroup(t.Group),
		kgo.InstanceID(t.Worker),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(l.opts.SessionTimeout),
		kgo.HeartbeatInterval(l.opts.SessionTimeout / 5),
		kgo.BlockRebalanceOnPoll(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16 << 20),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onRevoked),
		kgo.OnOffsetsFetched(s.onFetched),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			s.mu.Lock()
			s.blocked = true
			s.mu.Unlock()
		}),
	}, l.opts.ClientOpts...)
	s.opts = opts
	s.ts, err = kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: join group %s: %w", t.Group, err)
	}
	return s, nil
}

func (s *session) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			id := stream.TaskID{Stream: topic, Partition: int(p)}
			delete(s.fetched, id)
			if s.owned[id] {
				delete(s.owned, id)
				s.revoked = append(s.revoked, id)
			}
		}
	}
}

func (s *session) onFetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(topic string, p int32, off int64, code int16) error {
		if err := kerr.ErrorForCode(code); err != nil {
			return err
		}
		s.fetched[stream.TaskID{Stream: topic, Partition: int(p)}] = off
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := add(t.Topic, p.Partition, p.Offset, p.ErrorCode); err != nil {
				return err
			}
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				if err := add(t.Topic, p.Partition, p.Offset, p.ErrorCode); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *session) Poll(ctx context.Context, max time.Duration) (*stream.Batch, error) {
	b := &stream.Batch{}
	if !s.polled {
		s.ts.AllowRebalance() // nothing uncommitted: let a waiting rebalance run
	}
	s.mu.Lock()
	b.Revoked, s.revoked = s.revoked, nil
	if s.reset {
		// After an aborted transaction every task restarts from the
		// committed state, which the client rewound to. A task the client
		// has no committed offset for may have been revoked meanwhile: it
		// is dropped, and assigned again if its records still come.
		s.reset = false
		committed := s.ts.Client().CommittedOffsets()
		for id := range s.owned {
			b.Revoked = append(b.Revoked, id)
			delete(s.owned, id)
			if eo, ok := committed[id.Stream][int32(id.Partition)]; ok {
				s.fetched[id] = eo.Offset
			}
		}
	}
	pending := make(map[stream.TaskID]int64, len(s.fetched))
	for id, off := range s.fetched {
		pending[id] = off
	}
	clear(s.fetched)
	s.mu.Unlock()
	if err := s.assign(ctx, b, pending); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, max)
	fs := s.ts.PollRecords(pctx, 2000)
	cancel()
	if fs.IsClientClosed() {
		return nil, errors.New("kafka: client closed")
	}
	var errs []error
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, err))
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("kafka: fetch: %w", errors.Join(errs...))
	}
	// Partitions whose offsets were fetched during this poll are restored
	// before any of their records is handed on.
	s.mu.Lock()
	for id, off := range s.fetched {
		pending[id] = off
	}
	clear(s.fetched)
	s.mu.Unlock()
	if err := s.assign(ctx, b, pending); err != nil {
		return nil, err
	}
	// Records of a partition not (or no longer) known as owned: its
	// offsets were fetched (stably) before any record came, so the
	// client's committed offset is where it resumes.
	var lazy map[stream.TaskID]int64
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		id := stream.TaskID{Stream: p.Topic, Partition: int(p.Partition)}
		s.mu.Lock()
		owned := s.owned[id]
		s.mu.Unlock()
		if owned || len(p.Records) == 0 {
			return
		}
		if lazy == nil {
			lazy = map[stream.TaskID]int64{}
		}
		lazy[id] = -1
		if eo, ok := s.ts.Client().CommittedOffsets()[p.Topic][p.Partition]; ok {
			lazy[id] = eo.Offset
		}
	})
	if err := s.assign(ctx, b, lazy); err != nil {
		return nil, err
	}
	fs.EachRecord(func(r *kgo.Record) {
		id := stream.TaskID{Stream: r.Topic, Partition: int(r.Partition)}
		b.Records = append(b.Records, stream.Record{Task: id, Value: r.Value, Next: strconv.FormatInt(r.Offset+1, 10)})
	})
	if len(b.Records) > 0 {
		s.polled = true
	}
	s.mu.Lock()
	if s.blocked && s.polled {
		b.CommitNow = true
	}
	s.blocked = false
	s.mu.Unlock()
	return b, nil
}

// assign restores the snapshots of tasks whose committed offsets are known.
func (s *session) assign(ctx context.Context, b *stream.Batch, pending map[stream.TaskID]int64) error {
	ids := make([]stream.TaskID, 0, len(pending))
	for id := range pending {
		if _, ok := s.index[id]; ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return s.index[ids[i]] < s.index[ids[j]] })
	for _, id := range ids {
		snap, err := s.lastSnapshot(ctx, id)
		if err != nil {
			return err
		}
		resume := ""
		if off := pending[id]; off >= 0 {
			resume = strconv.FormatInt(off, 10)
		}
		s.mu.Lock()
		s.owned[id] = true
		s.mu.Unlock()
		b.Assigned = append(b.Assigned, stream.Assignment{Task: id, Snapshot: snap, Resume: resume})
	}
	return nil
}

// lastSnapshot reads the task's partition of the state topic backwards
// until it finds the last committed snapshot.
func (s *session) lastSnapshot(ctx context.Context, id stream.TaskID) ([]byte, error) {
	topic, p := StateTopic(s.topo.Group), s.index[id]
	var snap []byte
	from := int64(-1)
	for back := int64(4); ; back *= 8 {
		var end int64
		var err error
		start := int64(0)
		if from != 0 {
			e, err := endOffset(ctx, s.l.opts, topic, p)
			if err != nil {
				return nil, err
			}
			start = max(0, e-back)
		}
		end, err = readPartition(ctx, s.l.opts.Brokers, topic, p, start, s.l.opts.ClientOpts, func(r *kgo.Record) {
			if string(r.Key) == id.String() {
				snap = r.Value
			}
		})
		if err != nil {
			return nil, err
		}
		if snap != nil || start == 0 || end == 0 {
			return snap, nil
		}
		from = start
	}
}

func endOffset(ctx context.Context, o Options, topic string, p int32) (int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.ClientOpts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	e, ok := ends.Lookup(topic, p)
	if !ok || e.Err != nil {
		return 0, fmt.Errorf("kafka: end offset of %s/%d: %v", topic, p, e.Err)
	}
	return e.Offset, nil
}

// Commit writes every task's outputs and snapshot and the consumed offsets
// in one transaction.
func (s *session) Commit(ctx context.Context, tasks []stream.TaskCommit) (err error) {
	defer func() {
		if err != nil {
			// Whatever failed, the tasks restart from the committed state
			// (the worker drops them), and the next Poll lets a waiting
			// rebalance run.
			s.polled = false
			s.mu.Lock()
			s.reset = true
			s.mu.Unlock()
		}
	}()
	if err := s.ts.Begin(); err != nil {
		return fmt.Errorf("kafka: begin transaction: %w", err)
	}
	var mu sync.Mutex
	var perr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = errors.Join(perr, err)
			mu.Unlock()
		}
	}
	for _, tc := range tasks {
		for _, o := range tc.Outputs {
			s.ts.Produce(ctx, &kgo.Record{Topic: o.Stream, Partition: int32(o.Partition), Value: o.Value,
				Headers: []kgo.RecordHeader{{Key: "ppml-id", Value: []byte(o.ID)}}}, promise)
		}
		s.ts.Produce(ctx, &kgo.Record{Topic: StateTopic(s.topo.Group), Partition: s.index[tc.Task], Key: []byte(tc.Task.String()),
			Value: tc.Snapshot, Headers: []kgo.RecordHeader{{Key: "next", Value: []byte(tc.Next)}}}, promise)
	}
	commit := kgo.TryCommit
	if err := s.ts.Client().Flush(ctx); err != nil || perr != nil {
		commit = kgo.TryAbort
	}
	// End is bounded: it waits for a heartbeat to confirm the membership, and
	// the heartbeat loop does not run while the group's manage loop waits for
	// a rebalance that BlockRebalanceOnPoll holds back until the next Poll —
	// which is what happens when the broker went away mid-commit (a heartbeat
	// failed, the client wants to rejoin). Unbounded, the worker would wait
	// forever.
	ectx, cancel := context.WithTimeout(ctx, s.l.opts.SessionTimeout)
	committed, err := s.ts.End(ectx, commit)
	cancel()
	if err != nil {
		// The outcome is unknown: the broker may have committed the
		// transaction or not, and the client's idea of the committed offsets
		// and of its own transaction may be stale. Start over as a restarted
		// worker would: a new client, whose InitProducerID fences (aborts)
		// whatever of this transaction is still open and whose group join
		// fetches the committed offsets from the broker; every task restarts
		// from its last committed snapshot.
		s.ts.CloseAllowingRebalance() // a static member: it does not leave the group
		ts, nerr := kgo.NewGroupTransactSession(s.opts...)
		if nerr != nil {
			return fmt.Errorf("kafka: end transaction: %w; and a new client: %w", err, nerr)
		}
		s.mu.Lock()
		s.ts = ts
		clear(s.fetched)
		s.mu.Unlock()
		return fmt.Errorf("kafka: end transaction: %w (rejoining with a new client)", err)
	}
	if !committed {
		if perr != nil {
			return fmt.Errorf("kafka: produce: %w", perr)
		}
		return fmt.Errorf("kafka: transaction aborted by a rebalance: %w", stream.ErrFenced)
	}
	s.polled = false
	return nil
}

// Close ends the transactional session and leaves the group. A static
// member (kgo.InstanceID) does not leave when its client closes — so that a
// worker restarted under the same name gets its tasks back without a
// rebalance — and its tasks would wait for the session timeout. A worker
// that closes its session is stopping on purpose (a drain, or an error it
// reports), so it leaves by instance id and the group rebalances at once.
// A worker that dies (kill -9) never gets here: static membership then
// keeps its tasks for its restart, up to the session timeout.
func (s *session) Close(ctx context.Context) error {
	s.ts.AllowRebalance()
	s.ts.Close()
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.l.opts.Brokers...)}, s.l.opts.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("kafka: leave group %s: %w", s.topo.Group, err)
	}
	defer admin.Close()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := kadm.NewClient(admin).LeaveGroup(lctx, kadm.LeaveGroup(s.topo.Group).InstanceIDs(s.topo.Worker))
	if err == nil {
		err = res.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
		return fmt.Errorf("kafka: leave group %s as %s: %w", s.topo.Group, s.topo.Worker, err)
	}
	return nil
}
