// Package jetstream is the stream.Log on NATS JetStream, embedded in the
// worker (Embedded: nats-server in the same binary, the single-binary
// default) or as an external cluster.
//
// Each partition P of a stream S is the subject "ppml.S.P" of the
// JetStream stream S (dots become underscores in its name). A task reads
// its partition through a durable pull consumer that starts right after
// the position of its last snapshot. JetStream has no transactions, so a
// commit is, per task: publish the outputs with Nats-Msg-Id set to their
// deterministic ids (JetStream drops repeats within the stream's
// duplicate window), then store the sealed snapshot with its position in
// the key-value bucket "ppml_state_GROUP" with a compare-and-set on the
// revision the task was claimed at (a worker that lost the task cannot
// overwrite it), then acknowledge the inputs with a double ack. A task
// that restarts from its last snapshot repeats its outputs with the same
// ids: each reaches the stream once. Tasks are owned through leases in
// the bucket "ppml_lease_GROUP", whose entries expire after the lease TTL.
package jetstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/ppml/ppml/stream"
)

// Options configure the log.
type Options struct {
	// LeaseTTL is how long a dead worker holds its tasks. Default 10s.
	LeaseTTL time.Duration
	// DuplicateWindow is how long JetStream remembers output ids: a task
	// must recover within it for its repeated outputs to be dropped.
	// Default 1h.
	DuplicateWindow time.Duration
	// Memory keeps streams in memory instead of files (tests, benchmarks).
	Memory bool
	// Replicas of each stream and bucket on a cluster. Default 1.
	Replicas int
}

// Log is a stream.Log on a NATS connection with JetStream.
type Log struct {
	nc   *nats.Conn
	opts Options
}

// New returns a Log on nc.
func New(nc *nats.Conn, opts Options) *Log {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = time.Hour
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	return &Log{nc: nc, opts: opts}
}

// StreamName is the JetStream stream of a ppml stream.
func StreamName(name string) string { return strings.ReplaceAll(name, ".", "_") }

// Subject is the subject of a partition.
func Subject(name string, partition int) string {
	return "ppml." + name + "." + strconv.Itoa(partition)
}

// CreateStream makes the JetStream stream of a ppml stream if it is missing.
func CreateStream(ctx context.Context, j js.JetStream, name string, opts Options) error {
	storage := js.FileStorage
	if opts.Memory {
		storage = js.MemoryStorage
	}
	_, err := j.CreateStream(ctx, js.StreamConfig{Name: StreamName(name), Subjects: []string{"ppml." + name + ".*"},
		Storage: storage, Duplicates: opts.DuplicateWindow, Replicas: max(opts.Replicas, 1), MaxMsgSize: -1})
	if errors.Is(err, js.ErrStreamNameAlreadyInUse) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: create stream %s: %w", StreamName(name), err)
	}
	return nil
}

// Append publishes records to a partition (producers). ids, when given,
// become Nats-Msg-Id: a producer that retries does not write twice.
func Append(ctx context.Context, j js.JetStream, name string, partition int, values [][]byte, ids []string) error {
	var futs []js.PubAckFuture
	for i, v := range values {
		m := nats.NewMsg(Subject(name, partition))
		m.Data = v
		if i < len(ids) && ids[i] != "" {
			m.Header.Set(nats.MsgIdHdr, ids[i])
		}
		f, err := j.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	return waitAcks(ctx, j, futs)
}

func waitAcks(ctx context.Context, j js.JetStream, futs []js.PubAckFuture) error {
	select {
	case <-j.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("jetstream: publish to %s: %w", f.Msg().Subject, err)
		}
	}
	return nil
}

// Read returns the records of a partition (consumers).
func Read(ctx context.Context, j js.JetStream, name string, partition int) ([][]byte, error) {
	s, err := j.Stream(ctx, StreamName(name))
	if errors.Is(err, js.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, js.OrderedConsumerConfig{FilterSubjects: []string{Subject(name, partition)}})
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, js.WithSubjectFilter(Subject(name, partition)))
	if err != nil {
		return nil, err
	}
	n := int(info.State.Subjects[Subject(name, partition)])
	var out [][]byte
	for len(out) < n {
		b, err := c.Fetch(min(n-len(out), 1000), js.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range b.Messages() {
			out = append(out, m.Data())
			got++
		}
		if b.Error() != nil {
			return nil, b.Error()
		}
		if got == 0 {
			return nil, fmt.Errorf("jetstream: read %s: %d of %d messages", Subject(name, partition), len(out), n)
		}
	}
	return out, nil
}

type session struct {
	l      *Log
	j      js.JetStream
	topo   stream.Topology
	leases js.KeyValue
	state  js.KeyValue
	all    []stream.TaskID

	owned   map[stream.TaskID]*ownedTask
	release map[stream.TaskID]bool
	revoke  []stream.TaskID
	reset   bool
	notify  chan struct{}

	mu          sync.Mutex // guards leaseRev, lost and rebalance for the renewer and the watcher
	leaseRev    map[stream.TaskID]uint64
	lost        map[stream.TaskID]bool
	rebalance   bool // the group changed: a worker came or left, a task's lease was given back
	lastBalance time.Time
	stop, done  chan struct{}
}

type ownedTask struct {
	rev    uint64 // revision of the snapshot entry this worker claimed or wrote
	epoch  uint64
	resume string
	snap   []byte
	fresh  bool
	cc     js.ConsumeContext

	mu    sync.Mutex
	gen   uint64        // claims of the task: which consumer's deliveries count
	msgs  []js.Msg      // delivered by the consumer, not yet polled
	space chan struct{} // one token per message in msgs: the consumer waits when full
	err   error
	last  uint64 // stream sequence of the last message polled
	tail  js.Msg // the last message polled: acknowledged after commit
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// Join implements stream.Log.
func (l *Log) Join(ctx context.Context, t stream.Topology) (stream.Session, error) {
	j, err := js.New(l.nc, js.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	storage := js.FileStorage
	if l.opts.Memory {
		storage = js.MemoryStorage
	}
	// The streams and buckets are made (or found) at once: each is a round
	// trip that writes to the server's store.
	specs := append(append([]stream.StreamSpec(nil), t.Inputs...), t.Outputs...)
	errs := make([]error, len(specs)+2)
	var leases, state js.KeyValue
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Go(func() { errs[i] = CreateStream(ctx, j, sp.Name, l.opts) })
	}
	wg.Go(func() {
		var err error
		leases, err = j.CreateOrUpdateKeyValue(ctx, js.KeyValueConfig{Bucket: "ppml_lease_" + sanitize(t.Group), TTL: l.opts.LeaseTTL,
			Storage: storage, Replicas: l.opts.Replicas})
		if err != nil {
			errs[len(specs)] = fmt.Errorf("jetstream: lease bucket: %w", err)
		}
	})
	wg.Go(func() {
		var err error
		state, err = j.CreateOrUpdateKeyValue(ctx, js.KeyValueConfig{Bucket: "ppml_state_" + sanitize(t.Group), History: 1,
			Storage: storage, Replicas: l.opts.Replicas, MaxValueSize: -1})
		if err != nil {
			errs[len(specs)+1] = fmt.Errorf("jetstream: state bucket: %w", err)
		}
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &session{l: l, j: j, topo: t, leases: leases, state: state, owned: map[stream.TaskID]*ownedTask{},
		release: map[stream.TaskID]bool{}, notify: make(chan struct{}, 1), leaseRev: map[stream.TaskID]uint64{},
		lost: map[stream.TaskID]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, in := range t.Inputs {
		for p := 0; p < in.Partitions; p++ {
			s.all = append(s.all, stream.TaskID{Stream: in.Name, Partition: p})
		}
	}
	if _, err := leases.Put(ctx, memberKey(t.Worker), []byte(t.Worker)); err != nil {
		return nil, fmt.Errorf("jetstream: join group %s: %w", t.Group, err)
	}
	// Watching the leases lets the group rebalance as soon as a worker
	// joins or leaves or a task is handed over, not at the next periodic
	// check (a third of the lease TTL); that check still catches workers
	// that died (their entries expire without a notice).
	watcher, err := leases.WatchAll(ctx, js.UpdatesOnly(), js.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("jetstream: watch group %s: %w", t.Group, err)
	}
	go s.renew()
	go s.watch(watcher)
	return s, nil
}

// watch flags a rebalance when a member appears or disappears or a task's
// lease is deleted (handed over or released by a worker that left).
// Renewals of known members and of task leases are not changes.
func (s *session) watch(w js.KeyWatcher) {
	defer w.Stop()
	members := map[string]bool{memberKey(s.topo.Worker): true}
	for {
		var e js.KeyValueEntry
		select {
		case <-s.stop:
			return
		case e = <-w.Updates():
		}
		if e == nil {
			continue
		}
		change := false
		gone := e.Operation() == js.KeyValueDelete || e.Operation() == js.KeyValuePurge
		switch k := e.Key(); {
		case strings.HasPrefix(k, "member."):
			if gone && members[k] {
				delete(members, k)
				change = true
			} else if !gone && !members[k] {
				members[k] = true
				change = true
			}
		case strings.HasPrefix(k, "task."):
			change = gone
		}
		if !change {
			continue
		}
		s.mu.Lock()
		s.rebalance = true
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

func memberKey(w string) string { return "member." + sanitize(w) }
func leaseKey(t stream.TaskID) string {
	return "task." + sanitize(t.Stream) + "." + strconv.Itoa(t.Partition)
}
func snapKey(t stream.TaskID) string { return leaseKey(t) }

func (s *session) renew() {
	defer close(s.done)
	tick := time.NewTicker(s.l.opts.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.l.opts.LeaseTTL/3)
		s.leases.Put(ctx, memberKey(s.topo.Worker), []byte(s.topo.Worker))
		s.mu.Lock()
		revs := make(map[stream.TaskID]uint64, len(s.leaseRev))
		for id, r := range s.leaseRev {
			revs[id] = r
		}
		s.mu.Unlock()
		for id, r := range revs {
			nr, err := s.leases.Update(ctx, leaseKey(id), []byte(s.topo.Worker), r)
			s.mu.Lock()
			if err == nil {
				if _, ok := s.leaseRev[id]; ok {
					s.leaseRev[id] = nr
				}
			} else if errors.Is(err, js.ErrKeyRevisionMismatch) || errors.Is(err, js.ErrKeyExists) || errors.Is(err, js.ErrKeyNotFound) {
				s.lost[id] = true
			}
			s.mu.Unlock()
		}
		cancel()
	}
}

func (s *session) desired(ctx context.Context) (map[stream.TaskID]bool, error) {
	lister, err := s.leases.ListKeysFiltered(ctx, "member.*")
	if err != nil && !errors.Is(err, js.ErrNoKeysFound) {
		return nil, err
	}
	names := []string{sanitize(s.topo.Worker)}
	if lister != nil {
		for k := range lister.Keys() {
			if n := strings.TrimPrefix(k, "member."); n != names[0] {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	me := sort.SearchStrings(names, sanitize(s.topo.Worker))
	out := map[stream.TaskID]bool{}
	for i, t := range s.all {
		if i%len(names) == me {
			out[t] = true
		}
	}
	return out, nil
}

func (s *session) Poll(ctx context.Context, maxWait time.Duration) (*stream.Batch, error) {
	deadline := time.Now().Add(maxWait)
	b := &stream.Batch{Revoked: s.revoke}
	s.revoke = nil
	s.mu.Lock()
	var lost []stream.TaskID
	for id := range s.lost {
		lost = append(lost, id)
	}
	clear(s.lost)
	s.mu.Unlock()
	for _, id := range lost {
		if s.owned[id] != nil {
			s.drop(id)
			b.Revoked = append(b.Revoked, id)
		}
	}
	if s.reset {
		for id, o := range s.owned {
			b.Revoked = append(b.Revoked, id)
			if !s.holds(ctx, id) {
				s.drop(id)
				continue
			}
			if err := s.claim(ctx, id, o); err != nil {
				return nil, err
			}
		}
		s.reset = false
	}
	s.mu.Lock()
	changed := s.rebalance
	s.rebalance = false
	s.mu.Unlock()
	if changed || time.Since(s.lastBalance) > s.l.opts.LeaseTTL/3 {
		if err := s.balance(ctx, b); err != nil {
			s.mu.Lock()
			s.rebalance = s.rebalance || changed
			s.mu.Unlock()
			return nil, err
		}
		s.lastBalance = time.Now()
	}
	// Tasks to hand over go at the next commit: ask for it now, so the
	// worker that wants them does not wait a checkpoint interval.
	b.CommitNow = len(s.release) > 0
	for id, o := range s.owned {
		if o.fresh {
			o.fresh = false
			b.Assigned = append(b.Assigned, stream.Assignment{Task: id, Snapshot: o.snap, Resume: o.resume})
			o.snap = nil
		}
	}
	for {
		for id, o := range s.owned {
			o.mu.Lock()
			k := min(len(o.msgs), maxPoll)
			msgs, err := o.msgs[:k], o.err
			o.msgs, o.err = o.msgs[k:], nil
			o.mu.Unlock()
			for range k {
				<-o.space
			}
			if err != nil {
				// What this Poll took of other tasks' messages (and their
				// assignments) goes with the batch: every task restarts
				// from its committed state at the next Poll, and none reads
				// on before.
				s.reset = true
				return nil, fmt.Errorf("jetstream: read %s: %w", id, err)
			}
			for _, m := range msgs {
				md, err := m.Metadata()
				if err != nil || md.Sequence.Stream <= o.last {
					continue // a redelivery of what was read before
				}
				o.last, o.tail = md.Sequence.Stream, m
				b.Records = append(b.Records, stream.Record{Task: id, Value: m.Data(), Next: strconv.FormatUint(md.Sequence.Stream, 10)})
			}
		}
		if len(b.Records)+len(b.Assigned)+len(b.Revoked) > 0 {
			return b, nil
		}
		wait := time.Until(deadline)
		s.mu.Lock()
		changed := s.rebalance
		s.mu.Unlock()
		if wait <= 0 || changed {
			return b, nil // a change: the next Poll rebalances
		}
		t := time.NewTimer(wait)
		select {
		case <-s.notify:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return b, nil
		}
	}
}

func (s *session) balance(ctx context.Context, b *stream.Batch) error {
	want, err := s.desired(ctx)
	if err != nil {
		return err
	}
	for id, o := range s.owned {
		if want[id] {
			continue
		}
		// Nothing polled since the last commit: the snapshot covers all
		// the worker did, and what the consumer read ahead is re-read by
		// the next owner.
		if o.tail == nil {
			s.hand(ctx, id)
			b.Revoked = append(b.Revoked, id)
			continue
		}
		s.release[id] = true
	}
	// Tasks are claimed at once, each by its own round trips (a lease, the
	// snapshot's compare-and-set, a consumer): a worker that starts, or
	// takes over a dead one's tasks, does not wait for them one by one.
	var ids []stream.TaskID
	for _, id := range s.all {
		if want[id] && s.owned[id] == nil {
			ids = append(ids, id)
		}
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			rev, err := s.leases.Create(ctx, leaseKey(id), []byte(s.topo.Worker))
			if errors.Is(err, js.ErrKeyExists) {
				return // its owner hands it over after its next commit, or its lease runs out
			}
			if err != nil {
				errs[i] = fmt.Errorf("jetstream: lease of %s: %w", id, err)
				return
			}
			o := &ownedTask{}
			s.mu.Lock()
			s.leaseRev[id] = rev
			s.owned[id] = o
			s.mu.Unlock()
			errs[i] = s.claim(ctx, id, o)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// claim reads a task's snapshot and bumps its epoch with a
// compare-and-set, which fences out a previous owner still at work, then
// (re)creates the task's consumer right after the snapshot's position.
func (s *session) claim(ctx context.Context, id stream.TaskID, o *ownedTask) error {
	if o.cc != nil {
		o.stopConsume()
		o.cc = nil
	}
	var epoch uint64
	var resume string
	var snap []byte
	var rev uint64
	e, err := s.state.Get(ctx, snapKey(id))
	switch {
	case errors.Is(err, js.ErrKeyNotFound):
	case err != nil:
		return err
	default:
		if epoch, resume, snap, err = decodeState(e.Value()); err != nil {
			return fmt.Errorf("jetstream: state of %s: %w", id, err)
		}
		rev = e.Revision()
	}
	val := encodeState(epoch+1, resume, snap)
	if rev == 0 {
		rev, err = s.state.Create(ctx, snapKey(id), val)
	} else {
		rev, err = s.state.Update(ctx, snapKey(id), val, rev)
	}
	if err != nil {
		return fmt.Errorf("jetstream: claim %s: %w", id, err)
	}
	o.rev, o.epoch, o.resume, o.snap, o.fresh = rev, epoch+1, resume, snap, true
	// Deliveries and errors of the consumer this claim replaces, should
	// any still come, are not this one's: the generation tells them apart.
	o.mu.Lock()
	o.gen++
	gen := o.gen
	o.msgs, o.err, o.tail, o.last = nil, nil, nil, 0
	o.mu.Unlock()
	o.space = make(chan struct{}, maxBuffered)
	start := uint64(1)
	if resume != "" {
		last, _ := strconv.ParseUint(resume, 10, 64)
		o.last = last
		start = last + 1
	}
	st, err := s.j.Stream(ctx, StreamName(id.Stream))
	if err != nil {
		return err
	}
	name := sanitize(s.topo.Group + "_" + id.Stream + "_" + strconv.Itoa(id.Partition))
	if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, js.ErrConsumerNotFound) {
		return err
	}
	// The consumer's own state (its acknowledgements) is kept in the
	// server's memory: the position that counts is the snapshot's, and a
	// consumer is made anew at every claim, so writing its state to disk
	// (a file written and renamed after acknowledgements, files made at
	// each claim) buys nothing. A consumer that a server restart lost
	// fails its pull requests, and the task is claimed again.
	c, err := st.CreateConsumer(ctx, js.ConsumerConfig{Durable: name, FilterSubject: Subject(id.Stream, id.Partition),
		DeliverPolicy: js.DeliverByStartSequencePolicy, OptStartSeq: start, AckPolicy: js.AckAllPolicy,
		AckWait: 10 * time.Minute, MaxAckPending: -1, Replicas: s.l.opts.Replicas, MemoryStorage: true})
	if err != nil {
		return fmt.Errorf("jetstream: consumer for %s: %w", id, err)
	}
	space := o.space
	o.cc, err = c.Consume(func(m js.Msg) {
		// Back pressure: the consumer delivers no more than the engine
		// takes, so a backlog is read batch by batch.
		space <- struct{}{}
		o.mu.Lock()
		if o.gen == gen {
			o.msgs = append(o.msgs, m)
		}
		o.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}, js.PullMaxMessages(maxBuffered/2), js.PullExpiry(pullExpiry), js.PullHeartbeat(pullHeartbeat), js.ConsumeErrHandler(func(_ js.ConsumeContext, err error) {
		// No responder to a pull request: the consumer is not there (a
		// server restart lost it) or JetStream is not up yet. The client
		// would ask again for ever; the task is claimed again instead,
		// which makes the consumer anew once JetStream answers.
		if errors.Is(err, js.ErrConsumerDeleted) || errors.Is(err, js.ErrConsumerNotFound) || errors.Is(err, nats.ErrNoResponders) {
			o.mu.Lock()
			if o.gen == gen {
				o.err = err
			}
			o.mu.Unlock()
		}
	}))
	return err
}

// maxBuffered bounds the messages read ahead per task; maxPoll the
// messages one Poll hands on per task.
const (
	maxBuffered = 500
	maxPoll     = 250
)

// A pull request that goes unanswered (lost, or its messages dropped
// on the way) is noticed only when the server's idle heartbeats stop
// for two intervals; the client then asks again. With nats.go's
// defaults (30 s requests, 15 s heartbeats) a task's partition stands
// still for 30 s meanwhile — once seen in a benchmark run, a 0.3 s
// round taking 30.2 s. Short requests with 1 s heartbeats bound that to
// about 2 s; an idle task costs a heartbeat a second.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
)

// stopConsume stops the consumer, unblocking a delivery waiting for space.
func (o *ownedTask) stopConsume() {
	done := make(chan struct{})
	go func() { o.cc.Stop(); close(done) }()
	for {
		select {
		case <-done:
			return
		case <-o.space:
		}
	}
}

func encodeState(epoch uint64, next string, snap []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, epoch)
	b = binary.AppendUvarint(b, uint64(len(next)))
	b = append(b, next...)
	return append(b, snap...)
}

func decodeState(b []byte) (epoch uint64, next string, snap []byte, err error) {
	if len(b) < 8 {
		return 0, "", nil, errors.New("entry too short")
	}
	epoch = binary.BigEndian.Uint64(b)
	n, k := binary.Uvarint(b[8:])
	if k <= 0 || uint64(len(b)-8-k) < n {
		return 0, "", nil, errors.New("corrupt entry")
	}
	next = string(b[8+k : 8+k+int(n)])
	if rest := b[8+k+int(n):]; len(rest) > 0 {
		snap = append([]byte(nil), rest...)
	}
	return epoch, next, snap, nil
}

// hand gives a task back: stop reading, delete the lease.
func (s *session) hand(ctx context.Context, id stream.TaskID) {
	s.mu.Lock()
	rev := s.leaseRev[id]
	s.mu.Unlock()
	s.drop(id)
	s.leases.Delete(ctx, leaseKey(id), js.LastRevision(rev))
}

func (s *session) drop(id stream.TaskID) {
	if o := s.owned[id]; o != nil && o.cc != nil {
		o.stopConsume()
	}
	s.mu.Lock()
	delete(s.owned, id)
	delete(s.leaseRev, id)
	s.mu.Unlock()
}

// holds reports whether this worker's lease on a task is still current.
func (s *session) holds(ctx context.Context, id stream.TaskID) bool {
	e, err := s.leases.Get(ctx, leaseKey(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	return err == nil && string(e.Value()) == s.topo.Worker && e.Revision() == s.leaseRev[id]
}

// Commit publishes each task's outputs (de-duplicated by id), then stores
// its snapshot with a compare-and-set, then acknowledges its inputs.
func (s *session) Commit(ctx context.Context, tasks []stream.TaskCommit) error {
	var futs []js.PubAckFuture
	for _, tc := range tasks {
		if s.owned[tc.Task] == nil {
			s.reset = true
			return fmt.Errorf("jetstream: task %s: %w", tc.Task, stream.ErrFenced)
		}
		for _, o := range tc.Outputs {
			m := nats.NewMsg(Subject(o.Stream, o.Partition))
			m.Data = o.Value
			if o.ID != "" {
				m.Header.Set(nats.MsgIdHdr, o.ID)
			}
			f, err := s.j.PublishMsgAsync(m)
			if err != nil {
				s.reset = true
				return fmt.Errorf("jetstream: publish: %w", err)
			}
			futs = append(futs, f)
		}
	}
	if err := waitAcks(ctx, s.j, futs); err != nil {
		s.reset = true
		return err
	}
	// Each task's snapshot is its own compare-and-set: they go out at
	// once, not one round trip after another.
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, tc := range tasks {
		o := s.owned[tc.Task]
		wg.Go(func() {
			rev, err := s.state.Update(ctx, snapKey(tc.Task), encodeState(o.epoch, tc.Next, tc.Snapshot), o.rev)
			if err != nil {
				if errors.Is(err, js.ErrKeyRevisionMismatch) || errors.Is(err, js.ErrKeyExists) {
					s.mu.Lock()
					s.lost[tc.Task] = true
					s.mu.Unlock()
					err = fmt.Errorf("jetstream: task %s: %w", tc.Task, stream.ErrFenced)
				} else {
					err = fmt.Errorf("jetstream: store the snapshot of %s: %w", tc.Task, err)
				}
				errs[i] = err
				return
			}
			o.rev = rev
			if o.tail != nil {
				// The double ack tells us JetStream recorded it; a lost one
				// only means the inputs are redelivered and skipped.
				o.tail.DoubleAck(ctx)
				o.tail = nil
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.reset = true
		return err
	}
	for id := range s.release {
		if s.owned[id] != nil {
			s.hand(ctx, id)
			s.revoke = append(s.revoke, id)
		}
	}
	clear(s.release)
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
		s.hand(ctx, id)
	}
	return s.leases.Delete(ctx, memberKey(s.topo.Worker))
}
