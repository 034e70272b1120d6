package stream

import "testing"

// FuzzDecodeShuffle decodes arbitrary shuffle bodies. They arrive sealed
// under the state key, so only this engine writes them; the decoder still
// never panics and bounds every length.
func FuzzDecodeShuffle(f *testing.F) {
	aggs := []Agg{{Name: "n", Op: Count}, {Name: "s", Op: Sum, Field: "v"}, {Name: "d", Op: DistinctCount, Field: "v"}}
	a := newAcc(aggs)
	a.add(aggs, []Value{{}, Num(2.5), Str("x")})
	m := shuffleMsg{from: 1, wm: 99, partials: []windowPartial{{w: Window{0, 60000}, keys: []keyAcc{{"\x01\x01k", a}}}},
		lateRows: []lateRow{{time: 5, key: "\x01\x01k", vals: []Value{{}, Num(1), Str("y")}}}}
	f.Add(m.encode(aggs))
	f.Add((&shuffleMsg{from: 0, idle: true}).encode(aggs))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeShuffle(b, aggs)
		if err != nil {
			return
		}
		for _, p := range m.partials {
			for _, k := range p.keys {
				k.acc.result(aggs, 1)
			}
		}
		m.encode(aggs)
	})
}
