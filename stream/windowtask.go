package stream

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ppml/ppml/stream/record"
)

// windowTask runs the second stage for one shuffle partition: it merges
// partial aggregates from every source task, keeps the minimum of their
// watermarks (idle ones aside), fires each window when that watermark
// passes the window's end, keeps the window for the allowed lateness and
// re-fires it for late data, and sends what is later still to the late
// side output.
type windowTask struct {
	task
	pl       *Plan
	up       []upstream // one per source partition
	wm       int64
	windows  map[Window]*winState
	sessions map[string][]Window

	results  []byte // result lines of the current record
	prefix   []byte // resultPrefix of prefixOf
	prefixOf Window
	keyVals  []Value // scratch: a decoded key
	nres     int
	lateOut  []byte
	chunkNum int
	hint     int // keys of the largest window so far: the size of a new window's map
	// spare holds purged windows (not session windows), emptied, for new
	// windows to reuse their key map and key order: each window made
	// them anew, as large as the largest window, and grew its order
	// from empty, copying it at every doubling: 0.32 of the 5.08 GB a
	// benchmark invocation allocated.
	spare []*winState
	// plain receives each shuffle record's plaintext: the keys decoded
	// from it are cloned when kept, so nothing holds it after process.
	plain []byte
	shuf  shuffleMsg // each shuffle record is decoded into it
}

type upstream struct {
	wm          int64
	idle, ended bool
}

type winState struct {
	keys  map[string]*keyState
	fired bool
	// Keys and key states of windows whose keys are purged together (all
	// but session windows) come from chunks the window holds instead of
	// an allocation each.
	arena strArena
	slab  []keyState
	// order holds those windows' keys in the order they came, which the
	// task's input fixes and snapshots keep: results fire in it, so a
	// task that repeats its work after a restart cuts the same result
	// records (their ids are their positions) without sorting the keys.
	order []orderedKey
}

type orderedKey struct {
	k  string
	ks *keyState
}

// newKey adds key k (which may share a record's bytes: it is copied) with
// accumulator a (taken over). dropped says the window drops keys one by
// one (session windows), so a key must not keep a chunk alive.
func (ws *winState) newKey(k string, a *acc, dropped bool) *keyState {
	if dropped {
		ks := &keyState{acc: *a}
		ws.keys[strings.Clone(k)] = ks
		return ks
	}
	if len(ws.slab) == 0 {
		ws.slab = make([]keyState, min(max(len(ws.keys)/4, 16), 1024))
	}
	ks := &ws.slab[0]
	ws.slab = ws.slab[1:]
	ks.acc = *a
	k = ws.arena.clone(k)
	ws.keys[k] = ks
	ws.order = append(ws.order, orderedKey{k, ks})
	return ks
}

// keyState is one key's aggregate in a window and the panes fired for it.
type keyState struct {
	acc  acc
	pane int
}

// newWindow adds window w's state, sized for the most keys of a window
// so far or keys, whichever is more.
func (t *windowTask) newWindow(w Window, keys int) *winState {
	var ws *winState
	if n := len(t.spare); n > 0 {
		ws, t.spare = t.spare[n-1], t.spare[:n-1]
	} else {
		size := max(t.hint, min(keys, maxWindowHint))
		ws = &winState{keys: make(map[string]*keyState, size)}
		if t.pl.Window.Kind != SessionKind {
			ws.order = make([]orderedKey, 0, size)
		}
	}
	t.windows[w] = ws
	return ws
}

// recycle empties ws, a purged window that is in no map any more, and
// keeps it for a new window. Its arena is not reused: strings cut from
// it (its keys) are immutable, so its bytes are never written again.
// The unused rest of its slab is: no key state points there.
func (t *windowTask) recycle(ws *winState) {
	if t.pl.Window.Kind == SessionKind || len(t.spare) >= maxSpare {
		return
	}
	clear(ws.keys)
	clear(ws.order) // the keys and key states are not kept alive
	ws.order = ws.order[:0]
	ws.fired = false
	ws.arena = strArena{}
	t.spare = append(t.spare, ws)
}

// maxWindowHint bounds the size a new window's map is given from what a
// shuffle record says.
const maxWindowHint = 1 << 20

// resultChunk bounds the result lines of one output record.
const resultChunk = 1000

func newWindowTask(w *worker, id TaskID, index int) *windowTask {
	t := &windowTask{pl: w.plan, wm: math.MinInt64}
	t.init(w, id, index)
	t.up = make([]upstream, t.pl.Source.Partitions)
	for i := range t.up {
		t.up[i].wm = math.MinInt64
	}
	t.windows = map[Window]*winState{}
	t.sessions = map[string][]Window{}
	return t
}

func (t *windowTask) process(r Record) error {
	t.pos = r.Next
	t.stats.Records++
	t.dirty = true
	t.results, t.nres, t.lateOut, t.chunkNum = t.results[:0], 0, t.lateOut[:0], 0
	rec, err := t.w.state.OpenInto(reusable(&t.plain, len(r.Value)), t.id.Stream, uint32(t.id.Partition), r.Value)
	if err != nil {
		return t.deadLetter(r.Value, err)
	}
	if err := t.checkSeq(&rec.Header); err != nil {
		return t.deadLetter(r.Value, err)
	}
	if rec.Kind != record.KindData {
		return t.deadLetter(r.Value, fmt.Errorf("unexpected %s record in the shuffle stream", rec.Kind))
	}
	m := &t.shuf
	err = decodeShuffleInto(m, rec.Body, t.pl.Aggs)
	if err == nil && (m.from < 0 || m.from >= len(t.up)) {
		err = fmt.Errorf("shuffle message from source partition %d of %d", m.from, len(t.up))
	}
	if err != nil {
		return t.deadLetter(r.Value, err)
	}
	for _, p := range m.partials {
		switch {
		case t.isLate(p.w):
			for i := range p.keys {
				t.latePartial(p.w, p.keys[i].key, &p.keys[i].acc)
			}
		case t.pl.Window.Kind == SessionKind:
			for i := range p.keys {
				t.merge(p.w, p.keys[i].key, &p.keys[i].acc)
			}
		default:
			// One window per partial: looked up once, not per key, and
			// sized from the partial when it is new (a source partition
			// sees most of a window's keys).
			ws := t.windows[p.w]
			if ws == nil {
				ws = t.newWindow(p.w, len(p.keys))
			}
			for i := range p.keys {
				t.mergeInto(ws, p.w, p.keys[i].key, &p.keys[i].acc, 0)
			}
		}
	}
	var wins []Window
	for _, lr := range m.lateRows {
		wins = t.pl.Window.assign(lr.time, wins[:0])
		on := false
		for _, w := range wins {
			if t.isLate(w) {
				continue
			}
			a := newAcc(t.pl.Aggs)
			a.add(t.pl.Aggs, lr.vals)
			t.merge(w, lr.key, a)
			on = true
		}
		if !on {
			t.lateRow(lr)
		}
	}
	u := &t.up[m.from]
	switch {
	case m.ended:
		u.ended, u.idle, u.wm = true, false, math.MaxInt64
	case m.idle:
		u.idle = true
	case m.wm != math.MinInt64:
		u.idle = false
		u.wm = max(u.wm, m.wm)
	}
	t.advance()
	return t.flushOutputs()
}

func (t *windowTask) isLate(w Window) bool {
	return t.wm != math.MinInt64 && w.maxTs() <= t.wm-t.pl.Lateness.Milliseconds()
}

// merge adds a partial aggregate for key k to window w (merging session
// windows), and re-fires the key's result when the window already fired.
// k may share a record's bytes: it is cloned when kept; a is taken over
// (its content is not used after the call).
func (t *windowTask) merge(w Window, k string, a *acc) {
	pane := 0
	if t.pl.Window.Kind == SessionKind {
		// Cloned even when the key is known: assigning to a map entry
		// also stores the key used, which must not share k's bytes.
		k = strings.Clone(k)
		kept := t.sessions[k][:0]
		for _, o := range t.sessions[k] {
			if !mergeable(o, w) {
				kept = append(kept, o)
				continue
			}
			ws := t.windows[o]
			ks := ws.keys[k]
			a.merge(&ks.acc)
			pane = max(pane, ks.pane)
			w = union(o, w)
			t.dropKey(o, k)
		}
		t.sessions[k] = append(kept, w)
	}
	ws := t.windows[w]
	if ws == nil {
		ws = t.newWindow(w, 0)
	}
	t.mergeInto(ws, w, k, a, pane)
}

// mergeInto is merge's second half: ws is window w's state.
func (t *windowTask) mergeInto(ws *winState, w Window, k string, a *acc, pane int) {
	ks := ws.keys[k]
	if ks != nil {
		ks.acc.merge(a)
	} else {
		ks = ws.newKey(k, a, t.pl.Window.Kind == SessionKind)
	}
	ks.pane = max(ks.pane, pane)
	if w.maxTs() <= t.wm {
		// The window already fired: this is a late pane (Flink's
		// EventTimeTrigger fires at once for an element within the
		// allowed lateness).
		ws.fired = true
		t.result(w, k, ks)
	}
}

func (t *windowTask) dropKey(w Window, k string) {
	ws := t.windows[w]
	if ws == nil {
		return
	}
	delete(ws.keys, k)
	if len(ws.keys) == 0 {
		delete(t.windows, w)
	}
}

func (t *windowTask) result(w Window, k string, ks *keyState) {
	if t.prefix == nil || t.prefixOf != w {
		t.prefix, t.prefixOf = resultPrefix(w), w
	}
	if len(t.keyVals) != len(t.pl.KeyFields) {
		t.keyVals = make([]Value, len(t.pl.KeyFields))
	}
	t.results = t.pl.appendResultAfter(t.results, t.prefix, decodeKeyInto(t.keyVals, k), &ks.acc, ks.pane)
	ks.pane++
	t.nres++
	t.stats.Results++
}

// advance recomputes the watermark from the source tasks' and fires and
// purges windows.
func (t *windowTask) advance() {
	m := int64(math.MaxInt64)
	active, ended := false, true
	for _, u := range t.up {
		ended = ended && u.ended
		if u.idle {
			continue
		}
		active = true
		m = min(m, u.wm)
	}
	if !active || m <= t.wm {
		t.checkEnd(ended)
		return
	}
	t.wm = m
	var fire, purge []Window
	lateness := t.pl.Lateness.Milliseconds()
	for w, ws := range t.windows {
		if !ws.fired && w.maxTs() <= t.wm {
			fire = append(fire, w)
		}
		if t.wm == math.MaxInt64 || w.maxTs() <= t.wm-lateness {
			purge = append(purge, w)
		}
	}
	sortWindows(fire)
	t.closed = t.closed || len(fire) > 0
	for _, w := range fire {
		ws := t.windows[w]
		ws.fired = true
		t.hint = max(t.hint, len(ws.keys))
		order := ws.order
		if t.pl.Window.Kind == SessionKind {
			// Keys come and go one by one: sorted, as a task that
			// repeats its work after a restart must cut the same result
			// records (their ids are their positions).
			order = make([]orderedKey, 0, len(ws.keys))
			for k, ks := range ws.keys {
				order = append(order, orderedKey{k, ks})
			}
			slices.SortFunc(order, func(a, b orderedKey) int { return strings.Compare(a.k, b.k) })
		}
		for _, o := range order {
			t.result(w, o.k, o.ks)
			if t.nres >= resultChunk {
				t.flushResults()
			}
		}
	}
	for _, w := range purge {
		if t.pl.Window.Kind == SessionKind {
			for k := range t.windows[w].keys {
				t.sessions[k] = removeWindow(t.sessions[k], w)
				if len(t.sessions[k]) == 0 {
					delete(t.sessions, k)
				}
			}
		}
		ws := t.windows[w]
		delete(t.windows, w)
		t.recycle(ws)
	}
	t.checkEnd(ended)
}

func (t *windowTask) checkEnd(ended bool) {
	if ended && !t.ended {
		t.ended, t.endPending = true, true
		t.flushResults()
		if err := t.emitEnd(t.pl.Sink.Stream, t.id.Partition, t.outID("end", 0)); err != nil {
			t.failed = err
		}
	}
}

func (t *windowTask) latePartial(w Window, k string, a *acc) {
	t.stats.Late += a.n
	if t.pl.Sink.Late == "" {
		return
	}
	b := append(t.lateOut, `{"window_start":`...)
	b = Str(fmtMillis(w.Start)).appendJSON(b)
	b = append(b, `,"window_end":`...)
	b = Str(fmtMillis(w.End)).appendJSON(b)
	b = t.appendKeyFields(b, k)
	b = append(b, `,"late_events":`...)
	b = Num(float64(a.n)).appendJSON(b)
	t.lateOut = append(b, "}\n"...)
}

func (t *windowTask) lateRow(r lateRow) {
	t.stats.Late++
	if t.pl.Sink.Late == "" {
		return
	}
	b := append(t.lateOut, `{"event_time":`...)
	b = Str(fmtMillis(r.time)).appendJSON(b)
	b = t.appendKeyFields(b, r.key)
	seen := map[string]bool{}
	for i, g := range t.pl.Aggs {
		if g.Field == "" || seen[g.Field] {
			continue
		}
		seen[g.Field] = true
		b = append(b, ',')
		b = Str(g.Field).appendJSON(b)
		b = append(b, ':')
		b = r.vals[i].appendJSON(b)
	}
	t.lateOut = append(b, "}\n"...)
}

func (t *windowTask) appendKeyFields(b []byte, k string) []byte {
	for i, v := range decodeKey(k, len(t.pl.KeyFields)) {
		b = append(b, ',')
		b = Str(t.pl.KeyFields[i]).appendJSON(b)
		b = append(b, ':')
		b = v.appendJSON(b)
	}
	return b
}

func (t *windowTask) flushResults() {
	if t.nres == 0 || t.failed != nil {
		return
	}
	if err := t.emit(t.pl.Sink.Stream, t.id.Partition, 0, t.results, t.outID("out", t.chunkNum)); err != nil {
		t.failed = err
	}
	t.chunkNum++
	t.results, t.nres = t.results[:0], 0
}

func (t *windowTask) flushOutputs() error {
	t.flushResults()
	if len(t.lateOut) > 0 && t.failed == nil {
		if err := t.emit(t.pl.Sink.Late, 0, 0, t.lateOut, t.outID("late", 0)); err != nil {
			return err
		}
	}
	return t.failed
}

func (t *windowTask) snapshot() (TaskCommit, error) {
	return t.snapshotCommit(func(e *enc) {
		e.varint(t.wm)
		e.uvarint(uint64(len(t.up)))
		for _, u := range t.up {
			e.varint(u.wm)
			e.bool(u.idle)
			e.bool(u.ended)
		}
		// The layout is decodeWindows' with panes. Windows come in the
		// map's order (a snapshot needs no canonical order), keys in the
		// order they came (see winState.order), session windows' in the
		// map's.
		e.uvarint(uint64(len(t.windows)))
		for w, ws := range t.windows {
			e.varint(w.Start)
			e.varint(w.End)
			e.uvarint(uint64(len(ws.keys)))
			key := func(k string, ks *keyState) {
				e.str(k)
				ks.acc.encode(e, t.pl.Aggs)
				e.uvarint(uint64(ks.pane))
			}
			if t.pl.Window.Kind == SessionKind {
				for k, ks := range ws.keys {
					key(k, ks)
				}
				continue
			}
			for _, o := range ws.order {
				key(o.k, o.ks)
			}
		}
		ws := make([]Window, 0, len(t.windows))
		for w, st := range t.windows {
			if st.fired {
				ws = append(ws, w)
			}
		}
		e.uvarint(uint64(len(ws)))
		for _, w := range ws {
			e.varint(w.Start)
			e.varint(w.End)
		}
	})
}

func (t *windowTask) restoreState(d *dec) {
	t.wm = d.varint()
	n := d.count(3)
	if n != len(t.up) && d.err == nil {
		d.fail(fmt.Errorf("snapshot has %d source partitions, the plan %d", n, len(t.up)))
		return
	}
	for i := 0; i < n; i++ {
		t.up[i] = upstream{wm: d.varint(), idle: d.bool(), ended: d.bool()}
	}
	decodeWindows(d, t.pl.Aggs, true, func(w Window, k string, a *acc, pane int) {
		ws := t.windows[w]
		if ws == nil {
			ws = t.newWindow(w, 0)
		}
		if _, ok := ws.keys[k]; ok {
			d.fail(fmt.Errorf("key repeated in window %v", w))
			return
		}
		ws.newKey(k, a, t.pl.Window.Kind == SessionKind).pane = pane
		if t.pl.Window.Kind == SessionKind {
			t.sessions[k] = append(t.sessions[k], w)
		}
	})
	nf := d.count(2)
	for i := 0; i < nf && d.err == nil; i++ {
		w := Window{Start: d.varint(), End: d.varint()}
		if ws := t.windows[w]; ws != nil {
			ws.fired = true
		}
	}
}
