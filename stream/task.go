package stream

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/stream/record"
)

// Keys are the keys a worker needs. Source records are opened with Source;
// results and late records are sealed for Sink, dead letters for
// DeadLetter (Sink when nil); shuffle messages and state snapshots are
// sealed and opened with State, which must therefore both wrap and unwrap.
type Keys struct {
	Source     envelope.KeyResolver
	Sink       envelope.KeyWrapper
	DeadLetter envelope.KeyWrapper
	State      StateKey
}

// StateKey wraps and unwraps the data keys of the pipeline's own records.
type StateKey interface {
	envelope.KeyWrapper
	envelope.KeyResolver
}

// maxWriters bounds the input writers a task remembers for sequence checks;
// past it the writer least recently seen is forgotten.
const maxWriters = 4096

// task is what the two stages share: position, sequence checks of input
// writers, sealing of outputs and their ids, counters.
type task struct {
	id    TaskID
	index int // among all tasks of the plan: the partition of its snapshot
	w     *worker
	pos   string
	ended bool // the input ended (every writer of a source partition, or every source task)
	// endPending: the input ended since the last checkpoint, which is
	// then taken at once (Flink's final checkpoint at the end of input),
	// so what the task wrote last does not wait for the interval.
	endPending bool
	// closed: a window closed since the last checkpoint (the source task
	// sent its partials on, the window task fired it), which brings the
	// next checkpoint forward.
	closed bool

	// last sequence number seen from each input writer, and when it was
	// last seen (a counter) for eviction.
	writers map[record.WriterID]writerSeen
	seen    uint64
	ckpt    uint64 // snapshots taken: the sequence number of the next one
	next    map[string]map[uint32]uint64
	sealers map[string]*record.Writer

	out     []Output
	outSize int
	failed  error // a sealing failure inside a callback, reported by process
	dirty   bool
	stats   Stats
	lastIn  time.Time // processing time of the last record (idleness)
}

type writerSeen struct{ seq, at uint64 }

func (t *task) init(w *worker, id TaskID, index int) {
	t.id, t.index, t.w = id, index, w
	t.writers = map[record.WriterID]writerSeen{}
	t.next = map[string]map[uint32]uint64{}
	t.sealers = map[string]*record.Writer{}
	t.lastIn = time.Now()
}

// checkSeq checks that a record continues its writer's sequence. A gap is
// counted (records were lost or removed from the log); a repeat or a step
// back is an error: the record was replayed or reordered.
func (t *task) checkSeq(h *record.Header) error {
	t.seen++
	prev, ok := t.writers[h.Writer]
	if ok && h.Seq <= prev.seq {
		return fmt.Errorf("record %d of writer %s comes after record %d: replayed or reordered", h.Seq, h.Writer, prev.seq)
	}
	if ok && h.Seq != prev.seq+1 {
		t.stats.Gaps += int64(h.Seq - prev.seq - 1)
	}
	if !ok && len(t.writers) >= maxWriters {
		var oldest record.WriterID
		var at uint64 = ^uint64(0)
		for id, s := range t.writers {
			if s.at < at {
				oldest, at = id, s.at
			}
		}
		delete(t.writers, oldest)
	}
	t.writers[h.Writer] = writerSeen{seq: h.Seq, at: t.seen}
	return nil
}

// writerID is the stable id of this task's writer for stream, so readers
// see one unbroken sequence across restarts and moves of the task.
func (t *task) writerID(stream string) record.WriterID {
	h := sha256.Sum256([]byte("ppml-stream writer\x00" + t.w.plan.Name + "\x00" + t.id.String() + "\x00" + stream))
	var id record.WriterID
	copy(id[:], h[:])
	return id
}

func (t *task) sealer(stream string) (*record.Writer, error) {
	if s, ok := t.sealers[stream]; ok {
		return s, nil
	}
	kw := t.w.keyFor(stream)
	s, err := record.NewWriter(stream, kw, &record.WriterOptions{ID: t.writerID(stream), Next: t.next[stream]})
	if err != nil {
		return nil, err
	}
	t.sealers[stream] = s
	return s, nil
}

// emit seals body for stream/partition and buffers it with id.
func (t *task) emit(stream string, partition int, eventTime int64, body []byte, id string) error {
	s, err := t.sealer(stream)
	if err != nil {
		return err
	}
	b, err := s.Seal(uint32(partition), eventTime, body)
	if err != nil {
		return err
	}
	t.push(Output{Stream: stream, Partition: partition, Value: b, ID: id})
	return nil
}

func (t *task) emitEnd(stream string, partition int, id string) error {
	s, err := t.sealer(stream)
	if err != nil {
		return err
	}
	b, err := s.SealEnd(uint32(partition))
	if err != nil {
		return err
	}
	t.push(Output{Stream: stream, Partition: partition, Value: b, ID: id})
	return nil
}

func (t *task) push(o Output) {
	t.out = append(t.out, o)
	t.outSize += len(o.Value)
	t.dirty = true
}

// outID names an output by what caused it: the task, the input position and
// a label, so repeated work yields the same id.
func (t *task) outID(label string, n int) string {
	return t.w.plan.Name + "|" + t.id.String() + "|" + t.pos + "|" + label + "|" + strconv.Itoa(n)
}

// deadLetter records why the record at pos could not be processed. The
// dead letter holds the reason and the raw bytes, sealed; the log says
// only that it happened.
func (t *task) deadLetter(raw []byte, reason error) error {
	t.stats.DeadLetters++
	t.dirty = true
	dl := t.w.plan.Sink.DeadLetter
	if dl == "" {
		return nil
	}
	var b []byte
	b = append(b, `{"stream":`...)
	b = Str(t.id.Stream).appendJSON(b)
	b = append(b, `,"partition":`...)
	b = Num(float64(t.id.Partition)).appendJSON(b)
	b = append(b, `,"position":`...)
	b = Str(t.pos).appendJSON(b)
	b = append(b, `,"reason":`...)
	b = Str(reason.Error()).appendJSON(b)
	b = append(b, `,"record_base64":"`...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	b = append(b, "\"}\n"...)
	return t.emit(dl, 0, time.Now().UnixMilli(), b, t.outID("dead", 0))
}

// commit returns the task's checkpoint share and resets its buffers.
func (t *task) snapshotCommit(state func(e *enc)) (TaskCommit, error) {
	for s, w := range t.sealers {
		t.next[s] = w.NextAll()
	}
	e := &enc{}
	e.byte1(snapshotVersion)
	e.str(t.pos)
	e.bool(t.ended)
	ids := make([]record.WriterID, 0, len(t.writers))
	for id := range t.writers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return t.writers[ids[i]].at < t.writers[ids[j]].at })
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.b = append(e.b, id[:]...)
		e.uvarint(t.writers[id].seq)
	}
	streams := make([]string, 0, len(t.next))
	for s := range t.next {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	e.uvarint(uint64(len(streams)))
	for _, s := range streams {
		e.str(s)
		parts := make([]uint32, 0, len(t.next[s]))
		for p := range t.next[s] {
			parts = append(parts, p)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		e.uvarint(uint64(len(parts)))
		for _, p := range parts {
			e.uvarint(uint64(p))
			e.uvarint(t.next[s][p])
		}
	}
	state(e)
	t.ckpt++
	sealed, err := t.w.sealSnapshot(t, e.b)
	if err != nil {
		return TaskCommit{}, err
	}
	tc := TaskCommit{Task: t.id, Snapshot: sealed, Next: t.pos, Outputs: t.out}
	return tc, nil
}

func (t *task) committed() {
	t.out, t.outSize, t.dirty, t.endPending, t.closed = nil, 0, false, false, false
}

// restore reads the common part of a snapshot; d is left at the stage's part.
func (t *task) restore(d *dec) {
	if v := d.byte1(); v != snapshotVersion && d.err == nil {
		d.fail(fmt.Errorf("snapshot version %d (this ppml reads %d)", v, snapshotVersion))
	}
	t.pos = d.str()
	t.ended = d.bool()
	n := d.count(WriterIDSizePlus1)
	for i := 0; i < n; i++ {
		var id record.WriterID
		if len(d.b) < len(id) {
			d.fail(errShort)
			break
		}
		copy(id[:], d.b)
		d.b = d.b[len(id):]
		t.seen++
		t.writers[id] = writerSeen{seq: d.uvarint(), at: t.seen}
	}
	ns := d.count(2)
	for i := 0; i < ns; i++ {
		s := d.str()
		m := map[uint32]uint64{}
		np := d.count(2)
		for j := 0; j < np; j++ {
			p := uint32(d.uvarint())
			m[p] = d.uvarint()
		}
		t.next[s] = m
	}
}

// WriterIDSizePlus1 is the least size of a writer entry in a snapshot.
const WriterIDSizePlus1 = record.WriterIDSize + 1

const snapshotVersion = 1

// Stats counts what a worker did since it started.
type Stats struct {
	Records     int64 // input records processed (source and shuffle)
	Events      int64 // events decoded from source records
	DeadLetters int64 // records that could not be processed
	Late        int64 // late events and partial aggregates (side output)
	Gaps        int64 // missing sequence numbers of input writers
	Results     int64 // result lines written
	Checkpoints int64
}

func (s *Stats) add(o *Stats) {
	s.Records += o.Records
	s.Events += o.Events
	s.DeadLetters += o.DeadLetters
	s.Late += o.Late
	s.Gaps += o.Gaps
	s.Results += o.Results
	s.Checkpoints += o.Checkpoints
}
