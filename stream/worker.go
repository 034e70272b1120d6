package stream

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
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
	// GOMAXPROCS.
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
	w := &worker{cfg: cfg, plan: cfg.Plan, keys: cfg.Keys, tasks: map[TaskID]taskRunner{}, index: map[TaskID]int{}}
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
			sess.Close(context.Background())
			return w.total, err
		}
		now := time.Now()
		for _, r := range w.tasks {
			if s, ok := r.(*sourceTask); ok {
				if err := s.idleCheck(now); err != nil {
					sess.Close(context.Background())
					return w.total, err
				}
			}
		}
		// A bounded run also commits whenever its input is drained, so the
		// next stage sees the shuffle without waiting for the interval.
		drained := w.cfg.StopWhenEnded && len(b.Records) == 0
		if drained || b.CommitNow || w.endPending() || time.Since(lastCkpt) >= w.interval() || w.buffered() >= w.cfg.MaxBuffered {
			if err := w.checkpoint(ctx, sess); err != nil {
				sess.Close(context.Background())
				return w.total, err
			}
			lastCkpt = time.Now()
		}
		if w.cfg.StopWhenEnded && w.allEnded() {
			if err := w.checkpoint(ctx, sess); err != nil {
				return w.total, err
			}
			return w.total, sess.Close(context.Background())
		}
	}
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

func (w *worker) endPending() bool {
	for _, r := range w.tasks {
		if r.base().endPending {
			return true
		}
	}
	return false
}

// closedGap: a closed window makes a checkpoint due after
// CheckpointInterval/closedGap. Windows rarely close that often (and a
// closed window leaves less state to snapshot), so the extra checkpoints
// are few in a long stream; results reach consumers sooner.
const closedGap = 20

// interval is the time from one checkpoint to the next as it stands.
func (w *worker) interval() time.Duration {
	for _, r := range w.tasks {
		if r.base().closed {
			return w.cfg.CheckpointInterval / closedGap
		}
	}
	return w.cfg.CheckpointInterval
}

func (w *worker) buffered() int {
	n := 0
	for _, r := range w.tasks {
		n += r.base().outSize
	}
	return n
}

// apply handles one Poll result: revocations, assignments, then records,
// processed in parallel across tasks and in order within each.
func (w *worker) apply(b *Batch) (err error) {
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
				err = s.end()
			}
		}
	}()
	if len(b.Records) == 0 {
		return nil
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
	errs := make([]error, len(order))
	w.parallel(len(order), func(i int) {
		id := order[i]
		r := w.tasks[id]
		for _, rec := range byTask[id] {
			if err := r.process(rec); err != nil {
				errs[i] = fmt.Errorf("stream: task %s: %w", id, err)
				return
			}
		}
	})
	return errors.Join(errs...)
}

// parallel runs f(0) to f(n-1), Config.Parallelism at a time, and waits
// for all: tasks work on their own state, so several may at once.
func (w *worker) parallel(n int, f func(i int)) {
	sem := make(chan struct{}, w.cfg.Parallelism)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
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
