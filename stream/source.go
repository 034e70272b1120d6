package stream

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/ppml/ppml/stream/record"
)

// sourceTask runs the first stage for one source partition: open and
// check records, decode, apply the steps, then either write rows to the
// sink (no GroupByKey) or pre-aggregate them per key and window and send
// partial aggregates to the window tasks when the partition's watermark
// passes the windows' end.
type sourceTask struct {
	task
	pl  *Plan
	run func(*Row)

	maxTime  int64 // largest event time seen; MinInt64 before any
	wm       int64 // this partition's watermark
	emitted  int64 // watermark last sent to the window tasks
	agg      *preAgg
	sessions map[string][]Window // session windows: each key's open sessions
	idle     bool
	idleW    *record.Writer // seals idle markers (random id: they are not repeatable)

	// scratch for one record
	winTime int64 // time s.wins were assigned for
	lastWin Window
	lastWA  *winAccs // s.agg.wins[lastWin]; nil after windows change
	key     []byte
	wins    []Window
	aggVals []Value
	late    map[int][]lateRow // late rows by shuffle partition
	lines   []byte            // rows for the sink (no GroupByKey)
	word    []byte            // a new word, lower-cased (fused count path)
	text    Row               // a text record's row (countText)
	// unfused runs a row through the tokenizer and accept: the fused
	// count path's way for rows it does not take
	unfused func(*Row)
	// plain receives each record's plaintext when the plan's steps keep
	// nothing of a row (no ParDo): rows share its bytes only while the
	// record is processed, and reusing it spares the allocation (and the
	// page faults of fresh memory) of every record's plaintext.
	plain []byte
}

func newSourceTask(w *worker, id TaskID, index int) *sourceTask {
	s := &sourceTask{pl: w.plan, maxTime: math.MinInt64, wm: math.MinInt64, emitted: math.MinInt64}
	s.init(w, id, index)
	s.agg = newPreAgg(s.pl.SinkPartitions())
	s.sessions = map[string][]Window{}
	s.late = map[int][]lateRow{}
	steps := make([]DoFn, len(s.pl.steps))
	for i, f := range s.pl.steps {
		steps[i] = f()
	}
	if s.pl.Aggregating() {
		s.run = chain(steps, s.accept)
		s.aggVals = make([]Value, len(s.pl.Aggs))
		if s.pl.fusedCount {
			s.agg.fused = true
			last := len(steps) - 1
			s.unfused = chain(steps[last:], s.accept)
			s.run = chain(steps[:last], s.countWords)
		}
	} else {
		s.run = chain(steps, func(r *Row) {
			s.lines = s.pl.appendRow(s.lines, r)
			s.stats.Results++
		})
	}
	return s
}

func (s *sourceTask) process(r Record) error {
	s.pos = r.Next
	s.stats.Records++
	s.lastIn = time.Now()
	s.idle = false
	s.dirty = true
	var dst []byte
	if !s.pl.userSteps {
		dst = reusable(&s.plain, len(r.Value))
	}
	rec, err := s.w.opener.OpenInto(dst, s.id.Stream, uint32(s.id.Partition), r.Value)
	if err != nil {
		return s.deadLetter(r.Value, err)
	}
	if err := s.checkSeq(&rec.Header); err != nil {
		return s.deadLetter(r.Value, err)
	}
	if rec.Kind == record.KindEnd {
		return s.end()
	}
	s.lines = s.lines[:0]
	ooo := s.pl.Time.MaxOutOfOrderness.Milliseconds()
	if err := s.runBody(rec.Body, rec.Time); err != nil {
		var de *errDecode
		if errors.As(err, &de) {
			return s.deadLetter(r.Value, err)
		}
		return err
	}
	if s.failed != nil {
		return s.failed
	}
	if !s.pl.Aggregating() {
		if len(s.lines) == 0 {
			return nil
		}
		return s.emit(s.pl.Sink.Stream, s.id.Partition, rec.Time, s.lines, s.outID("out", 0))
	}
	wm := s.wm
	if s.maxTime != math.MinInt64 && s.maxTime > math.MinInt64+ooo+1 {
		wm = max(wm, s.maxTime-ooo-1)
	}
	return s.advance(wm, false, "shuffle")
}

// runBody runs the rows of a record's plaintext body (time t) through
// the plan's steps.
func (s *sourceTask) runBody(body []byte, t int64) error {
	if s.pl.fusedText {
		s.countText(body, t)
		return nil
	}
	return s.pl.dec.decode(body, t, func(row *Row) {
		s.stats.Events++
		if row.Time > s.maxTime {
			s.maxTime = row.Time
		}
		s.run(row)
	})
}

// reusable returns *buf, grown to hold the plaintext of a record of n
// bytes (less than n), or nil past maxReusedPlain: a larger record gets
// a plaintext of its own.
func reusable(buf *[]byte, n int) []byte {
	if n > maxReusedPlain {
		return nil
	}
	if cap(*buf) < n {
		*buf = make([]byte, 0, min(n+n/4, maxReusedPlain))
	}
	return *buf
}

// maxReusedPlain bounds the plaintext buffer a task keeps between records.
const maxReusedPlain = 1 << 20

// accept pre-aggregates one row, or sets it aside as late when a window it
// belongs to was already sent on.
func (s *sourceTask) accept(r *Row) {
	for i, idx := range s.pl.aggIdx {
		if idx >= 0 {
			s.aggVals[i] = r.Vals[idx]
		}
	}
	if r.Time != s.winTime || len(s.wins) == 0 {
		// Rows of a record mostly share a time: assign once per time.
		s.wins = s.pl.Window.assign(r.Time, s.wins[:0])
		s.winTime = r.Time
	}
	for _, w := range s.wins {
		if w.maxTs() <= s.emitted {
			s.key = s.pl.appendKey(s.key[:0], r)
			s.lateRow(r.Time)
			return
		}
	}
	if s.pl.Window.Kind == SessionKind {
		s.key = s.pl.appendKey(s.key[:0], r)
		s.addSession(s.wins[0])
		return
	}
	var id int32
	if k := s.pl.strKey; k >= 0 && r.Vals[k].Kind == String {
		// One string key field: looked up by the string itself, without
		// encoding the key first (the encoded key only for a new one).
		v := &r.Vals[k]
		var ok bool
		if id, ok = s.agg.strIDs[v.S]; !ok {
			s.key = s.pl.appendKey(s.key[:0], r)
			id = s.agg.id(s.key)
			k := s.agg.keys[id]
			s.agg.strIDs[k[len(k)-len(v.S):]] = id // the interned key ends with the string
		}
	} else {
		s.key = s.pl.appendKey(s.key[:0], r)
		id = s.agg.id(s.key)
	}
	for _, w := range s.wins {
		a := s.accOf(w, id)
		if s.pl.countOnly {
			a.n++ // what add does for counts only
		} else {
			a.add(s.pl.Aggs, s.aggVals)
		}
	}
}

// accOf returns the accumulator of key id in window w, creating it. Its
// common case (the last window, a key seen in it) stays apart from the
// rest, which newAccOf does.
func (s *sourceTask) accOf(w Window, id int32) *acc {
	if wa := s.lastWA; wa != nil && w == s.lastWin {
		if a := wa.get(id); a != nil {
			return a
		}
	}
	return s.newAccOf(w, id)
}

func (s *sourceTask) newAccOf(w Window, id int32) *acc {
	wa := s.windowAccs(w)
	if a := wa.get(id); a != nil {
		return a
	}
	return wa.put(id, len(s.agg.keys), makeAcc(s.pl.Aggs))
}

// windowAccs returns window w's accumulators, creating them, and keeps
// them as the last window's.
func (s *sourceTask) windowAccs(w Window) *winAccs {
	if wa := s.lastWA; wa != nil && w == s.lastWin {
		return wa
	}
	wa := s.agg.window(w)
	s.lastWin, s.lastWA = w, wa
	return wa
}

func (s *sourceTask) addSession(w Window) {
	id := s.agg.id(s.key)
	k := s.agg.keys[id]
	a := makeAcc(s.pl.Aggs)
	a.add(s.pl.Aggs, s.aggVals)
	kept := s.sessions[k][:0]
	for _, o := range s.sessions[k] {
		if mergeable(o, w) {
			w = union(o, w)
			wa := s.agg.wins[o]
			a.merge(wa.get(id))
			wa.remove(id)
			if len(wa.ids) == 0 {
				delete(s.agg.wins, o)
			}
			continue
		}
		kept = append(kept, o)
	}
	s.sessions[k] = append(kept, w)
	s.lastWA = nil
	wa := s.agg.window(w)
	if o := wa.get(id); o != nil {
		o.merge(&a)
	} else {
		wa.put(id, len(s.agg.keys), a)
	}
}

// lateRow sends a row whose window was already sent on to the window task
// of its key, which decides (with the global watermark) whether it is late.
func (s *sourceTask) lateRow(t int64) {
	p := partitionOf(string(s.key), s.pl.SinkPartitions())
	vals := append([]Value(nil), s.aggVals...)
	for i := range vals {
		vals[i].S = strings.Clone(vals[i].S) // rows' strings are valid only during the call
	}
	s.late[p] = append(s.late[p], lateRow{time: t, key: string(s.key), vals: vals})
}

// advance moves the watermark to wm and, when windows close or a window
// boundary passes, sends partial aggregates and the watermark to every
// window task; late rows go out with them or on their own.
//
// label distinguishes the outputs of what triggered the call at one input
// position (a record, the end of a bounded input), so their ids differ.
func (s *sourceTask) advance(wm int64, ended bool, label string) error {
	if wm > s.wm {
		s.wm = wm
	}
	var flush []Window
	for w := range s.agg.wins {
		if w.maxTs() <= s.wm {
			flush = append(flush, w)
		}
	}
	send := ended || len(flush) > 0 || (s.wm > s.emitted && s.pl.Window.boundary(s.wm, s.pl.Lateness) != s.pl.Window.boundary(s.emitted, s.pl.Lateness))
	if !send && len(s.late) == 0 {
		return nil
	}
	sortWindows(flush)
	n := s.pl.SinkPartitions()
	sentWM := int64(math.MinInt64)
	if send {
		sentWM = s.wm
	}
	wins := make([]*winAccs, len(flush))
	live, largest := 0, 0
	for _, wa := range s.agg.wins {
		live += len(wa.ids)
	}
	for i, w := range flush {
		wins[i] = s.agg.wins[w]
		largest = max(largest, len(wins[i].ids))
	}
	bodies := encodeShuffle(s.id.Partition, sentWM, ended, flush, wins, s.agg, s.late, n, s.pl.Aggs)
	for i, w := range flush {
		delete(s.agg.wins, w)
		s.agg.recycle(wins[i]) // encoded: nothing refers to it any more
		s.lastWA = nil
		if s.pl.Window.Kind == SessionKind {
			for k := range s.sessions {
				s.sessions[k] = removeWindow(s.sessions[k], w)
				if len(s.sessions[k]) == 0 {
					delete(s.sessions, k)
				}
			}
		}
	}
	if len(flush) > 0 {
		s.agg.flushed(live, largest)
		s.closed = true
	}
	if send {
		s.emitted = s.wm
	}
	for p, body := range bodies {
		if !send && len(s.late[p]) == 0 {
			continue
		}
		if err := s.emit(s.pl.ShuffleStream(), p, 0, body, s.outID(label, p)); err != nil {
			return err
		}
	}
	clear(s.late)
	return nil
}

func removeWindow(ws []Window, w Window) []Window {
	out := ws[:0]
	for _, o := range ws {
		if o != w {
			out = append(out, o)
		}
	}
	return out
}

// end handles the partition's end record: the watermark jumps to the end
// of time, every window is sent on, and so is the end.
func (s *sourceTask) end() error {
	if s.ended {
		return nil
	}
	s.ended, s.endPending = true, true
	if !s.pl.Aggregating() {
		return s.emitEnd(s.pl.Sink.Stream, s.id.Partition, s.outID("end", 0))
	}
	return s.advance(math.MaxInt64, true, "end-shuffle")
}

// idleCheck tells the window tasks that this partition is idle, so it does
// not hold their watermark back.
func (s *sourceTask) idleCheck(now time.Time) error {
	to := s.pl.Time.IdleTimeout
	if to <= 0 || s.idle || s.ended || now.Sub(s.lastIn) < to {
		return nil
	}
	if s.idleW == nil {
		w, err := record.NewWriter(s.pl.ShuffleStream(), s.w.keys.State, nil)
		if err != nil {
			return err
		}
		s.idleW = w
	}
	s.idle = true
	m := shuffleMsg{from: s.id.Partition, wm: math.MinInt64, idle: true}
	body := m.encode(s.pl.Aggs)
	for p := 0; p < s.pl.SinkPartitions(); p++ {
		b, err := s.idleW.Seal(uint32(p), 0, body)
		if err != nil {
			return err
		}
		s.push(Output{Stream: s.pl.ShuffleStream(), Partition: p, Value: b, ID: fmt.Sprintf("%s|idle|%s|%d", s.pl.Name, s.idleW.ID(), s.idleW.Next(uint32(p)))})
	}
	return nil
}

func (s *sourceTask) snapshot() (TaskCommit, error) {
	return s.snapshotCommit(func(e *enc) {
		e.varint(s.maxTime)
		e.varint(s.wm)
		e.varint(s.emitted)
		s.agg.encode(e, s.pl.Aggs)
	})
}

func (s *sourceTask) restoreState(d *dec) {
	s.maxTime = d.varint()
	s.wm = d.varint()
	s.emitted = d.varint()
	decodeWindows(d, s.pl.Aggs, false, func(w Window, k string, a *acc, _ int) {
		id := s.agg.id([]byte(k))
		wa := s.agg.window(w)
		if wa.get(id) != nil {
			d.fail(fmt.Errorf("key repeated in window %v", w))
			return
		}
		wa.put(id, len(s.agg.keys), *a)
		if s.pl.Window != nil && s.pl.Window.Kind == SessionKind {
			s.sessions[k] = append(s.sessions[k], w)
		}
	})
}

// keyAcc is a key's partial aggregate in a shuffle message. A decoded
// key shares the message's decrypted bytes (never written again): what
// keeps it clones it.
type keyAcc struct {
	key string
	acc acc
}

type windowPartial struct {
	w    Window
	keys []keyAcc
}

func sortWindows(ws []Window) {
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].End != ws[j].End {
			return ws[i].End < ws[j].End
		}
		return ws[i].Start < ws[j].Start
	})
}

func decodeWindows(d *dec, aggs []Agg, panes bool, put func(Window, string, *acc, int)) {
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		w := Window{Start: d.varint(), End: d.varint()}
		nk := d.count(2)
		for j := 0; j < nk && d.err == nil; j++ {
			k := d.str()
			a := decodeAcc(d, aggs)
			pane := 0
			if panes {
				pane = int(d.uvarint())
			}
			put(w, k, a, pane)
		}
	}
}
