package stream

// preAgg holds a source task's partial aggregates per window and key.
// Keys are interned once per task (one map lookup per event, whatever
// the number of open windows, and no map that grows anew for every
// window), and each window keeps its accumulators in a slice in the
// order its keys first came, which is a deterministic function of the
// task's input: the shuffle needs no sort to be reproducible.
type preAgg struct {
	ids map[string]int32
	// strIDs finds the id of a plan's single string key field by the
	// string itself (its keys are suffixes of the interned keys): filled
	// by the source task, emptied when ids change.
	strIDs map[string]int32
	// words finds the ids of the fused count path's words (see
	// wordcount.go): emptied when ids change, like strIDs. With fused,
	// it is where those keys are interned: ids holds only the keys of
	// words too long for it (a map insert per new key, and the map's
	// growth, cost more than the table's).
	words wordTable
	fused bool
	keys  []string
	parts []int32 // shuffle partition of each key
	nPart int
	wins  map[Window]*winAccs
	hint  int // keys of the largest window flushed last: the size of a new window
	// spare holds windows sent on, emptied, for new windows to reuse:
	// a window's index and accumulators are as large as the windows
	// before it (hint), and making them anew for every window was 0.43
	// of the 5.08 GB a benchmark invocation allocated — memory the
	// collector then reclaims, and fresh pages whenever the heap grows.
	spare []*winAccs
}

// maxSpare bounds the emptied windows a task keeps: tumbling windows
// need one, sliding windows as many as overlap.
const maxSpare = 4

// winAccs is one window's accumulators.
type winAccs struct {
	pos  []int32 // by key id: 1 + index in ids and accs; 0 or beyond the end: absent
	ids  []int32
	accs []acc
}

func newPreAgg(partitions int) *preAgg {
	return &preAgg{ids: map[string]int32{}, strIDs: map[string]int32{}, nPart: partitions, wins: map[Window]*winAccs{}}
}

// id interns k.
func (p *preAgg) id(k []byte) int32 {
	if p.fused {
		if w, ok := tableWord(k); ok {
			id, h, pre, found := p.words.find(w, 0, len(w), p.keys)
			if !found {
				id = p.add(k)
				p.words.insert(h, pre, len(w), id, p.keys)
			}
			return id
		}
	}
	if id, ok := p.ids[string(k)]; ok {
		return id
	}
	id := p.add(k)
	p.ids[p.keys[id]] = id
	return id
}

// add appends k, which no id stands for, to the keys.
func (p *preAgg) add(k []byte) int32 {
	s := string(k)
	p.keys = append(p.keys, s)
	p.parts = append(p.parts, int32(partitionOf(s, p.nPart)))
	return int32(len(p.keys) - 1)
}

// window returns w's accumulators, creating them.
func (p *preAgg) window(w Window) *winAccs {
	wa := p.wins[w]
	if wa == nil && len(p.spare) > 0 {
		wa = p.spare[len(p.spare)-1]
		p.spare = p.spare[:len(p.spare)-1]
		p.wins[w] = wa
	}
	if wa == nil {
		wa = &winAccs{ids: make([]int32, 0, p.hint), accs: make([]acc, 0, p.hint)}
		if p.hint > 0 {
			wa.pos = make([]int32, len(p.keys), len(p.keys)+len(p.keys)/4)
		}
		p.wins[w] = wa
	}
	return wa
}

// recycle empties wa, a window that was sent on and is in no map any
// more, and keeps it for a new window.
func (p *preAgg) recycle(wa *winAccs) {
	if len(p.spare) >= maxSpare {
		return
	}
	for _, id := range wa.ids {
		wa.pos[id] = 0 // put made pos cover every id it added
	}
	clear(wa.accs) // what the accumulators point to (sets, partial sums) is not kept alive
	wa.ids, wa.accs = wa.ids[:0], wa.accs[:0]
	p.spare = append(p.spare, wa)
}

// get returns the accumulator of key id, or nil.
func (wa *winAccs) get(id int32) *acc {
	if int(id) < len(wa.pos) {
		if i := wa.pos[id]; i > 0 {
			return &wa.accs[i-1]
		}
	}
	return nil
}

// put adds an accumulator for key id (absent) and returns it; keys is the
// number of interned keys, to size the index once.
func (wa *winAccs) put(id int32, keys int, a acc) *acc {
	if int(id) >= len(wa.pos) {
		n := max(keys, int(id)+1)
		if cap(wa.pos) >= n {
			wa.pos = wa.pos[:n]
		} else {
			pos := make([]int32, n, n+n/4)
			copy(pos, wa.pos)
			wa.pos = pos
		}
	}
	wa.ids = append(wa.ids, id)
	wa.accs = append(wa.accs, a)
	wa.pos[id] = int32(len(wa.ids))
	return &wa.accs[len(wa.accs)-1]
}

// remove drops key id (present) by moving the last key into its place.
func (wa *winAccs) remove(id int32) {
	i := wa.pos[id] - 1
	last := int32(len(wa.ids) - 1)
	if i != last {
		wa.ids[i], wa.accs[i] = wa.ids[last], wa.accs[last]
		wa.pos[wa.ids[i]] = i + 1
	}
	wa.ids, wa.accs = wa.ids[:last], wa.accs[:last]
	wa.accs[:last+1][last] = acc{}
	wa.pos[id] = 0
}

// flushed notes that windows holding live keys in all (counted before
// they were removed) were sent on, and compacts the key table when most
// of its keys were in none of them: a long-running task's memory follows
// its windows, not every key it ever saw, while keys that recur from
// window to window stay interned. Amortized, it costs a constant per key.
func (p *preAgg) flushed(live, largest int) {
	p.hint = largest
	if len(p.keys) < 4096 || len(p.keys) <= 2*live {
		return
	}
	old := p.keys
	p.ids, p.keys, p.parts = make(map[string]int32, live), nil, nil
	p.strIDs = make(map[string]int32, live)
	p.words = wordTable{}
	for _, w := range sortedWindows(p.wins) {
		wa := p.wins[w]
		for i, id := range wa.ids {
			wa.ids[i] = p.id([]byte(old[id]))
		}
	}
	for _, wa := range p.wins {
		wa.pos = make([]int32, len(p.keys))
		for i, id := range wa.ids {
			wa.pos[id] = int32(i + 1)
		}
	}
}

func sortedWindows[V any](m map[Window]V) []Window {
	ws := make([]Window, 0, len(m))
	for w := range m {
		ws = append(ws, w)
	}
	sortWindows(ws)
	return ws
}

// encode writes the windows for a snapshot, in the layout encodeWindows
// writes (without panes).
func (p *preAgg) encode(e *enc, aggs []Agg) {
	e.uvarint(uint64(len(p.wins)))
	for w, wa := range p.wins {
		e.varint(w.Start)
		e.varint(w.End)
		e.uvarint(uint64(len(wa.ids)))
		for i, id := range wa.ids {
			e.str(p.keys[id])
			wa.accs[i].encode(e, aggs)
		}
	}
}
