package stream

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/stream/record"
)

// Config is what a worker runs.
type Config struct {
	Plan   *Plan
	Log    Log
	Worker string // this worker's name, stable across its restarts (Kafka transactional id)
	Keys   Keys
	// CheckpointInterval is how often the worker commits; results become
	// visible to consumers at commits. Default 2s. A window's closing
	// brings the next commit forward to CheckpointInterval/20 after the
	// last (closedGap), so that a closed window's partials and results do
	// not wait for the rest of an interval.
	CheckpointInterval time.Duration
	// MaxBuffered forces a checkpoint when this many bytes of output wait
	// for one. Default 16 MiB.
	MaxBuffered int
	// Parallelism is how many tasks process records at once. Default
	// GOMAXPROCS. A task goes on to the records of the next Poll as soon as
	// it is done with its own of the last, whatever the others still do:
	// the worker waits for every task only to take a checkpoint.
	Parallelism int
	// StopWhenEnded returns once the worker owns every task and all of
	// them ended (bounded mode).
	StopWhenEnded bool
	// Logf receives progress lines: counts, tasks, errors; never content.
	Logf func(format string, args ...any)
	// OnCommit is called after each successful checkpoint.
	OnCommit func(CommitInfo)
}

// CommitInfo describes one successful checkpoint.
type CommitInfo struct {
	Time      time.Time
	Tasks     []TaskID
	Positions []string // of each task: the position after its last committed record
	Outputs   int
	Stats     Stats // what the checkpoint committed
}

type taskRunner interface {
	base() *task
	process(Record) error
	snapshot() (TaskCommit, error)
	restoreState(*dec)
}

func (t *task) base() *task { return t }

type worker struct {
	cfg    Config
	plan   *Plan
	keys   Keys
	opener *record.Opener // source records with Keys.Source
	state  *record.Opener // shuffle messages and snapshots with Keys.State
	tasks  map[TaskID]taskRunner
	index  map[TaskID]int
	total  Stats
	logf   func(string, ...any)

	// Runs: each task's records of a Poll are processed on a goroutine,
	// in order after the task's run before (last), Parallelism at a time
	// (slots). The loop goes on polling while runs go on, with no more
	// than two Polls' runs under way (inflight); it waits for all of them
	// (settle) before it touches the state of a task that may run.
	slots    chan struct{}
	last     map[TaskID]chan struct{}
	inflight [][]chan struct{}
	runMu    sync.Mutex
	runErr   error
	// What the tasks' state asks of the loop, kept up by the runs as
	// they end, so that the loop need not wait for them to know: a
	// checkpoint at once (an input ended), soon (a window closed), or for
	// the output that waits.
	endPending atomic.Bool
	closed     atomic.Bool
	buffered   atomic.Int64
}

// StateStream names the stream bound into a pipeline's sealed snapshots.
func (pl *Plan) StateStream() string { return pl.Name + "-state" }

// Run runs a worker until ctx is cancelled (then it commits what it did
// and leaves the group: a graceful drain), until a fatal error (state that
// does not open or does not match the log: the worker stops rather than
// produce wrong results), or, with StopWhenEnded, until every task ended.
// Broker failures are retried with backoff.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Plan == nil || cfg.Log == nil {
		return Stats{}, errors.New("stream: Config needs a Plan and a Log")
	}
	if cfg.Keys.Source == nil || cfg.Keys.Sink == nil || cfg.Keys.State == nil {
		return Stats{}, errors.New("stream: Config.Keys needs Source, Sink and State keys")
	}
	if cfg.Worker == "" {
		return Stats{}, errors.New("stream: Config needs a Worker name")
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 2 * time.Second
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 16 << 20
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = runtime.GOMAXPROCS(0)
	}
	w := &worker{cfg: cfg, plan: cfg.Plan, keys: cfg.Keys, tasks: map[TaskID]taskRunner{}, index: map[TaskID]int{},
		slots: make(chan struct{}, cfg.Parallelism), last: map[TaskID]chan struct{}{}}
	w.logf = cfg.Logf
	if w.logf == nil {
		w.logf = func(string, ...any) {}
	}
	if w.keys.DeadLetter == nil {
		w.keys.DeadLetter = w.keys.Sink
	}
	w.opener = record.NewOpener(w.keys.Source)
	w.state = record.NewOpener(w.keys.State)
	i := 0
	for _, s := range w.plan.Inputs() {
		for p := 0; p < s.Partitions; p++ {
			w.index[TaskID{s.Name, p}] = i
			i++
		}
	}
	return w.run(ctx)
}

func (w *worker) run(ctx context.Context) (Stats, error) {
	topo := Topology{Group: w.plan.Name, Worker: w.cfg.Worker, Inputs: w.plan.Inputs(), Outputs: w.plan.Outputs()}
	var sess Session
	for b := newBackoff(); ; {
		var err error
		sess, err = w.cfg.Log.Join(ctx, topo)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return w.total, nil
		}
		d := b.next()
		w.logf("stream: cannot join group %s: %v; retrying in %v", topo.Group, err, d.Round(time.Millisecond))
		if !sleepCtx(ctx, d) {
			return w.total, nil
		}
	}
	w.logf("stream: worker %s joined group %s", w.cfg.Worker, topo.Group)
	lastCkpt := time.Now()
	pollErr := newBackoff()
	for {
		if ctx.Err() != nil {
			return w.total, w.drain(sess)
		}
		wait := w.interval() - time.Since(lastCkpt)
		if w.busy() {
			wait = 0 // take what the log has, or else wait for the runs (below)
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		b, err := sess.Poll(ctx, min(wait, 250*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			d := pollErr.next()
			w.logf("stream: reading from the log failed: %v; retrying in %v", err, d.Round(time.Millisecond))
			sleepCtx(ctx, d)
			continue
		}
		pollErr.reset()
		if err := w.apply(b); err != nil {
			return w.total, w.leave(sess, err)
		}
		// Nothing new to read: the runs under way finish, and what they
		// leave decides what comes next (a checkpoint, the end).
		if len(b.Records) == 0 {
			if err := w.settle(); err != nil {
				return w.total, w.leave(sess, err)
			}
		}
		if err := w.idleCheck(); err != nil {
			return w.total, w.leave(sess, err)
		}
		// A bounded run also commits whenever its input is drained, so the
		// next stage sees the shuffle without waiting for the interval.
		drained := w.cfg.StopWhenEnded && len(b.Records) == 0
		if drained || b.CommitNow || w.endPending.Load() || time.Since(lastCkpt) >= w.interval() || w.buffered.Load() >= int64(w.cfg.MaxBuffered) {
			if err := w.checkpoint(ctx, sess); err != nil {
				return w.total, w.leave(sess, err)
			}
			lastCkpt = time.Now()
		}
		if w.cfg.StopWhenEnded {
			if err := w.settle(); err != nil {
				return w.total, w.leave(sess, err)
			}
			if w.allEnded() {
				if err := w.checkpoint(ctx, sess); err != nil {
					return w.total, err
				}
				return w.total, sess.Close(context.Background())
			}
		}
	}
}

// leave ends the session after a fatal error, once no task runs.
func (w *worker) leave(sess Session, err error) error {
	w.settle()
	sess.Close(context.Background())
	return err
}

// drain commits what the worker did and leaves the group.
func (w *worker) drain(sess Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.checkpoint(ctx, sess)
	if cerr := sess.Close(ctx); err == nil && cerr != nil {
		err = fmt.Errorf("leave the group: %w", cerr)
	}
	return err
}

func (w *worker) allEnded() bool {
	if len(w.tasks) != len(w.index) {
		return false
	}
	for _, r := range w.tasks {
		t := r.base()
		if !t.ended || t.dirty {
			return false
		}
	}
	return true
}

// closedGap: a closed window makes a checkpoint due after
// CheckpointInterval/closedGap. Windows rarely close that often (and a
// closed window leaves less state to snapshot), so the extra checkpoints
// are few in a long stream; results reach consumers sooner.
const closedGap = 20

// interval is the time from one checkpoint to the next as it stands.
func (w *worker) interval() time.Duration {
	if w.closed.Load() {
		return w.cfg.CheckpointInterval / closedGap
	}
	return w.cfg.CheckpointInterval
}

// note updates what the loop knows of the tasks' state (endPending,
// closed, buffered) after task t changed, its output having been
// outBefore bytes.
func (w *worker) note(t *task, outBefore int) {
	if t.endPending {
		w.endPending.Store(true)
	}
	if t.closed {
		w.closed.Store(true)
	}
	w.buffered.Add(int64(t.outSize - outBefore))
}

// recount sets what the loop knows of the tasks' state from the tasks,
// which do not run.
func (w *worker) recount() {
	var end, closed bool
	n := 0
	for _, r := range w.tasks {
		t := r.base()
		end, closed, n = end || t.endPending, closed || t.closed, n+t.outSize
	}
	w.endPending.Store(end)
	w.closed.Store(closed)
	w.buffered.Store(int64(n))
}

// idleCheck tells the window tasks which source tasks are idle, of those
// that do not run (one that runs has records).
func (w *worker) idleCheck() error {
	now := time.Now()
	for id, r := range w.tasks {
		s, ok := r.(*sourceTask)
		if !ok || w.running(id) {
			continue
		}
		before := s.outSize
		if err := s.idleCheck(now); err != nil {
			return err
		}
		w.note(&s.task, before)
	}
	return nil
}

// running reports whether task id has a run under way.
func (w *worker) running(id TaskID) bool {
	d := w.last[id]
	return d != nil && !ended(d)
}

// busy reports whether a run is under way.
func (w *worker) busy() bool {
	for _, b := range w.inflight {
		for _, d := range b {
			if !ended(d) {
				return true
			}
		}
	}
	w.inflight = nil
	return false
}

// ended reports whether the run whose channel is d is done.
func ended(d chan struct{}) bool {
	select {
	case <-d:
		return true
	default:
		return false
	}
}

// settle waits until no task runs, and returns a run's error.
func (w *worker) settle() error {
	for _, b := range w.inflight {
		waitRuns(b)
	}
	w.inflight = nil
	return w.runError()
}

func waitRuns(runs []chan struct{}) {
	for _, d := range runs {
		<-d
	}
}

// apply handles one Poll result: revocations, assignments and ends of
// input once no task runs, then records, handed to each task's next run.
// It returns once the runs of the Poll before this one are done.
func (w *worker) apply(b *Batch) (err error) {
	if len(b.Revoked)+len(b.Assigned)+len(b.EndOfInput) > 0 {
		if err := w.settle(); err != nil {
			return err
		}
	}
	for _, id := range b.Revoked {
		if _, ok := w.tasks[id]; ok {
			delete(w.tasks, id)
			w.logf("stream: task %s revoked", id)
		}
	}
	for _, a := range b.Assigned {
		if err := w.assign(a); err != nil {
			return err
		}
	}
	defer func() {
		for _, id := range b.EndOfInput {
			if s, ok := w.tasks[id].(*sourceTask); ok && err == nil {
				if err = w.settle(); err == nil {
					before := s.outSize
					err = s.end()
					w.note(&s.task, before)
				}
			}
		}
	}()
	if len(b.Records) == 0 {
		return w.runError()
	}
	byTask := map[TaskID][]Record{}
	var order []TaskID
	for _, r := range b.Records {
		if _, ok := w.tasks[r.Task]; !ok {
			return fmt.Errorf("stream: the log delivered a record of task %s, which this worker does not own", r.Task)
		}
		if _, seen := byTask[r.Task]; !seen {
			order = append(order, r.Task)
		}
		byTask[r.Task] = append(byTask[r.Task], r)
	}
	runs := make([]chan struct{}, len(order))
	for i, id := range order {
		runs[i] = w.startRun(id, w.tasks[id], byTask[id])
	}
	w.inflight = append(w.inflight, runs)
	if len(w.inflight) > 1 {
		waitRuns(w.inflight[0])
		w.inflight = w.inflight[1:]
	}
	return w.runError()
}

// startRun processes records of task id in order, after the task's run
// before, on a goroutine of its own, once a slot is free; it returns a
// channel closed when it is done. After a run failed, no run processes
// anything: the error ends the worker.
func (w *worker) startRun(id TaskID, r taskRunner, recs []Record) chan struct{} {
	prev, done := w.last[id], make(chan struct{})
	w.last[id] = done
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		w.slots <- struct{}{}
		defer func() { <-w.slots }()
		if w.runError() != nil {
			return
		}
		t := r.base()
		before := t.outSize
		defer w.note(t, before)
		for _, rec := range recs {
			if err := r.process(rec); err != nil {
				w.runMu.Lock()
				w.runErr = errors.Join(w.runErr, fmt.Errorf("stream: task %s: %w", id, err))
				w.runMu.Unlock()
				return
			}
		}
	}()
	return done
}

func (w *worker) runError() error {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	return w.runErr
}

// parallel runs f(0) to f(n-1) in the runs' slots (Config.Parallelism
// at a time), and waits for all: tasks work on their own state, so
// several may at once. No run may be under way.
func (w *worker) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		w.slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-w.slots }()
			f(i)
		})
	}
	wg.Wait()
}

func (w *worker) assign(a Assignment) error {
	index, ok := w.index[a.Task]
	if !ok {
		return fmt.Errorf("stream: the log assigned task %s, which is not part of pipeline %s", a.Task, w.plan.Name)
	}
	var r taskRunner
	if a.Task.Stream == w.plan.Source.Stream {
		r = newSourceTask(w, a.Task, index)
	} else {
		r = newWindowTask(w, a.Task, index)
	}
	t := r.base()
	from := "the start"
	if a.Snapshot != nil {
		rec, err := w.state.Open(w.plan.StateStream(), uint32(index), a.Snapshot)
		if err != nil {
			return fmt.Errorf("stream: the snapshot of task %s does not open: %w", a.Task, err)
		}
		d := &dec{b: rec.Body}
		t.restore(d)
		r.restoreState(d)
		if err := d.done("snapshot of task " + a.Task.String()); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		t.ckpt = rec.Seq
		from = fmt.Sprintf("checkpoint %d", rec.Seq)
	}
	if a.Resume != t.pos {
		return fmt.Errorf("stream: task %s: the log resumes at position %q but the task's snapshot is at %q: the log's positions or snapshots were altered", a.Task, a.Resume, t.pos)
	}
	w.tasks[a.Task] = r
	w.logf("stream: task %s assigned, resuming from %s", a.Task, from)
	return nil
}

func (w *worker) sealSnapshot(t *task, body []byte) ([]byte, error) {
	s := t.sealers[w.plan.StateStream()]
	if s == nil {
		var err error
		s, err = record.NewWriter(w.plan.StateStream(), w.keys.State, &record.WriterOptions{
			ID: t.writerID(w.plan.StateStream()), Next: map[uint32]uint64{uint32(t.index): t.ckpt + 1}})
		if err != nil {
			return nil, err
		}
		t.sealers[w.plan.StateStream()] = s
	}
	return s.Seal(uint32(t.index), 0, body)
}

func (w *worker) keyFor(stream string) envelope.KeyWrapper {
	switch stream {
	case w.plan.ShuffleStream(), w.plan.StateStream():
		return w.keys.State
	case w.plan.Sink.DeadLetter:
		return w.keys.DeadLetter
	}
	return w.keys.Sink
}

// checkpoint commits every task that changed since its last checkpoint.
// A failed commit is not fatal: the log re-assigns the tasks from their
// last checkpoint, and the work is redone.
func (w *worker) checkpoint(ctx context.Context, sess Session) error {
	if err := w.settle(); err != nil {
		return err
	}
	defer w.recount()
	var ids []TaskID
	for id, r := range w.tasks {
		if r.base().dirty {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return w.index[ids[i]] < w.index[ids[j]] })
	// Snapshots are encoded and sealed in parallel, as records are
	// processed: a checkpoint holds up every task.
	commits := make([]TaskCommit, len(ids))
	errs := make([]error, len(ids))
	w.parallel(len(ids), func(i int) { commits[i], errs[i] = w.tasks[ids[i]].snapshot() })
	pos := make([]string, 0, len(ids))
	var st Stats
	outs := 0
	for i, id := range ids {
		tc := commits[i]
		if errs[i] != nil {
			return fmt.Errorf("stream: snapshot of task %s: %w", id, errs[i])
		}
		if len(tc.Snapshot) > record.MaxRecordSize {
			return fmt.Errorf("stream: the state of task %s is %d bytes, more than a record holds (%d): use more partitions or smaller windows", id, len(tc.Snapshot), record.MaxRecordSize)
		}
		pos = append(pos, tc.Next)
		st.add(&w.tasks[id].base().stats)
		outs += len(tc.Outputs)
	}
	if err := sess.Commit(ctx, commits); err != nil {
		w.logf("stream: checkpoint of %d tasks failed: %v; they restart from their last checkpoint", len(ids), err)
		clear(w.tasks)
		return nil
	}
	st.Checkpoints = 1
	for _, id := range ids {
		t := w.tasks[id].base()
		t.committed()
		t.stats = Stats{}
	}
	w.total.add(&st)
	if w.cfg.OnCommit != nil {
		w.cfg.OnCommit(CommitInfo{Time: time.Now(), Tasks: ids, Positions: pos, Outputs: outs, Stats: st})
	}
	return nil
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else if b.d < 10*time.Second {
		b.d *= 2
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
