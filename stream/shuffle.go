package stream

import (
	"fmt"
	"slices"
)

// shuffleMsg is the body of a shuffle record: what one source task tells
// one window task — its watermark, whether it is idle or ended, partial
// aggregates of windows it closed, and rows that came too late for its own
// windows.
type shuffleMsg struct {
	from     int   // source partition
	wm       int64 // MinInt64: no watermark in this message
	idle     bool
	ended    bool
	partials []windowPartial
	lateRows []lateRow
	keys     []keyAcc // what the partials' keys share when decoded (decodeShuffleInto)
}

type lateRow struct {
	time int64
	key  string
	vals []Value // aggregation inputs, in aggregation order
}

const shuffleVersion = 1

func (m *shuffleMsg) encode(aggs []Agg) []byte {
	e := &enc{}
	e.byte1(shuffleVersion)
	e.uvarint(uint64(m.from))
	e.varint(m.wm)
	e.bool(m.idle)
	e.bool(m.ended)
	e.uvarint(uint64(len(m.partials)))
	for _, p := range m.partials {
		e.varint(p.w.Start)
		e.varint(p.w.End)
		e.uvarint(uint64(len(p.keys)))
		for _, k := range p.keys {
			e.str(k.key)
			k.acc.encode(e, aggs)
		}
	}
	encodeLateRows(e, m.lateRows)
	return e.b
}

// encodeShuffle writes a source task's shuffle message for each of n
// window tasks: the watermark (MinInt64: none), the partial aggregates of
// the flushed windows ws (whose accumulators are wins) with keys routed by
// their partition, and late rows. It writes what m.encode writes for the
// same content, without building the messages first.
func encodeShuffle(from int, wm int64, ended bool, ws []Window, wins []*winAccs, p *preAgg, late map[int][]lateRow, n int, aggs []Agg) [][]byte {
	counts := make([]int, len(ws)*n) // keys of window i for partition q: counts[i*n+q]
	total := 0
	for i, wa := range wins {
		for _, id := range wa.ids {
			counts[i*n+int(p.parts[id])]++
		}
		total += len(wa.ids)
	}
	// The messages are written side by side, in one pass over each
	// window's keys (a key's partition, name and accumulator are each
	// read once, not once per partition).
	es := make([]enc, n)
	for q := range es {
		e := &es[q]
		e.b = make([]byte, 0, 16+total/n*12)
		e.byte1(shuffleVersion)
		e.uvarint(uint64(from))
		e.varint(wm)
		e.bool(false)
		e.bool(ended)
		np := 0
		for i := range ws {
			if counts[i*n+q] > 0 {
				np++
			}
		}
		e.uvarint(uint64(np))
	}
	for i, w := range ws {
		for q := range es {
			if c := counts[i*n+q]; c > 0 {
				es[q].varint(w.Start)
				es[q].varint(w.End)
				es[q].uvarint(uint64(c))
			}
		}
		wa := wins[i]
		for j, id := range wa.ids {
			e := &es[p.parts[id]]
			e.str(p.keys[id])
			wa.accs[j].encode(e, aggs)
		}
	}
	out := make([][]byte, n)
	for q := range es {
		encodeLateRows(&es[q], late[q])
		out[q] = es[q].b
	}
	return out
}

func encodeLateRows(e *enc, rows []lateRow) {
	e.uvarint(uint64(len(rows)))
	for _, r := range rows {
		e.varint(r.time)
		e.str(r.key)
		for _, v := range r.vals {
			e.value(v)
		}
	}
}

// decodeShuffle decodes a shuffle message. Its keys share b's bytes,
// which must never be written again (a record's decrypted body): the
// window task clones a key it keeps.
func decodeShuffle(b []byte, aggs []Agg) (*shuffleMsg, error) {
	m := &shuffleMsg{}
	if err := decodeShuffleInto(m, b, aggs); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeShuffleInto decodes b into m, reusing m's slices: a window task
// decodes every shuffle record into one message. What it reuses is only
// the slices' backing arrays: every key's accumulator is a new one (a
// window task takes an accumulator over), and keys share b.
func decodeShuffleInto(m *shuffleMsg, b []byte, aggs []Agg) error {
	d := &dec{b: b}
	if v := d.byte1(); v != shuffleVersion && d.err == nil {
		return fmt.Errorf("shuffle message version %d (this ppml reads %d)", v, shuffleVersion)
	}
	*m = shuffleMsg{partials: m.partials[:0], keys: m.keys[:0]}
	m.from = int(d.uvarint())
	m.wm = d.varint()
	m.idle = d.bool()
	m.ended = d.bool()
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		p := windowPartial{w: Window{Start: d.varint(), End: d.varint()}}
		nk := d.count(2)
		start := len(m.keys)
		m.keys = slices.Grow(m.keys, nk)
		for j := 0; j < nk && d.err == nil; j++ {
			var ka keyAcc
			ka.key = d.strNoCopy()
			decodeAccInto(d, aggs, &ka.acc)
			m.keys = append(m.keys, ka)
		}
		p.keys = m.keys[start:len(m.keys):len(m.keys)]
		m.partials = append(m.partials, p)
	}
	nr := d.count(2)
	for i := 0; i < nr && d.err == nil; i++ {
		r := lateRow{time: d.varint(), key: d.str(), vals: make([]Value, len(aggs))}
		for j := range r.vals {
			r.vals[j] = d.value()
		}
		m.lateRows = append(m.lateRows, r)
	}
	return d.done("shuffle message")
}
