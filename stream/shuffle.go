package stream

import "fmt"

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
	out := make([][]byte, n)
	for q := range out {
		e := &enc{b: make([]byte, 0, 16+total/n*12)}
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
		for i, w := range ws {
			c := counts[i*n+q]
			if c == 0 {
				continue
			}
			e.varint(w.Start)
			e.varint(w.End)
			e.uvarint(uint64(c))
			wa := wins[i]
			for j, id := range wa.ids {
				if int(p.parts[id]) == q {
					e.str(p.keys[id])
					wa.accs[j].encode(e, aggs)
				}
			}
		}
		encodeLateRows(e, late[q])
		out[q] = e.b
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
	d := &dec{b: b}
	if v := d.byte1(); v != shuffleVersion && d.err == nil {
		return nil, fmt.Errorf("shuffle message version %d (this ppml reads %d)", v, shuffleVersion)
	}
	m := &shuffleMsg{}
	m.from = int(d.uvarint())
	m.wm = d.varint()
	m.idle = d.bool()
	m.ended = d.bool()
	n := d.count(3)
	m.partials = make([]windowPartial, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		p := windowPartial{w: Window{Start: d.varint(), End: d.varint()}}
		nk := d.count(2)
		p.keys = make([]keyAcc, nk)
		for j := 0; j < nk && d.err == nil; j++ {
			p.keys[j].key = d.strNoCopy()
			decodeAccInto(d, aggs, &p.keys[j].acc)
		}
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
	if err := d.done("shuffle message"); err != nil {
		return nil, err
	}
	return m, nil
}
