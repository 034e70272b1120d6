package stream

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// AggOp is an aggregation.
type AggOp string

// Aggregations. All but count read a field; sum, min, max and mean need
// numbers and ignore nulls; distinct_count counts distinct non-null values.
const (
	Count         AggOp = "count"
	Sum           AggOp = "sum"
	Min           AggOp = "min"
	Max           AggOp = "max"
	Mean          AggOp = "mean"
	DistinctCount AggOp = "distinct_count"
)

// Agg is one output column computed per key and window.
type Agg struct {
	Name  string // output field
	Op    AggOp
	Field string // input field (all but count)
}

func (a Agg) numeric() bool { return a.Op == Sum || a.Op == Min || a.Op == Max || a.Op == Mean }

// acc accumulates one key in one window. Merging is exact and
// order-independent (sums are kept as non-overlapping partials and rounded
// once, like Python's math.fsum), so a window's result does not depend on
// the order in which partial aggregates reach it.
type acc struct {
	n int64 // rows
	s []aggState
}

type aggState struct {
	c        int64     // non-null values
	partials []float64 // sum: exact as non-overlapping partials
	min, max float64
	set      map[string]struct{}
}

func newAcc(aggs []Agg) *acc {
	a := makeAcc(aggs)
	return &a
}

// makeAcc returns an empty accumulator (by value, for slices of them).
func makeAcc(aggs []Agg) acc {
	for _, g := range aggs {
		if g.Op != Count {
			return acc{s: make([]aggState, len(aggs))}
		}
	}
	return acc{}
}

// add accumulates one row; vals are the aggregation inputs in agg order.
func (a *acc) add(aggs []Agg, vals []Value) {
	a.n++
	if a.s == nil {
		return
	}
	for i, g := range aggs {
		v := vals[i]
		if g.Op == Count || v.Kind == Null {
			continue
		}
		st := &a.s[i]
		switch g.Op {
		case DistinctCount:
			if st.set == nil {
				st.set = map[string]struct{}{}
			}
			if t := v.Text(); !hasKey(st.set, t) {
				st.set[strings.Clone(t)] = struct{}{} // rows' strings are valid only during the call
			}
			st.c++
		default:
			if v.Kind == Number {
				st.addNum(v.F)
			}
		}
	}
}

func hasKey(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}

func (st *aggState) addNum(f float64) {
	if st.c == 0 || f < st.min {
		st.min = f
	}
	if st.c == 0 || f > st.max {
		st.max = f
	}
	st.c++
	st.partials = fsumAdd(st.partials, f)
}

func (a *acc) merge(b *acc) {
	a.n += b.n
	if a.s == nil || b.s == nil {
		return
	}
	for i := range a.s {
		x, y := &a.s[i], &b.s[i]
		if y.c == 0 {
			continue
		}
		if x.c == 0 || y.min < x.min {
			x.min = y.min
		}
		if x.c == 0 || y.max > x.max {
			x.max = y.max
		}
		x.c += y.c
		for _, p := range y.partials {
			x.partials = fsumAdd(x.partials, p)
		}
		if y.set != nil {
			if x.set == nil {
				x.set = make(map[string]struct{}, len(y.set))
			}
			for k := range y.set {
				x.set[k] = struct{}{}
			}
		}
	}
}

// result is the value of aggregation i.
func (a *acc) result(aggs []Agg, i int) Value {
	g := aggs[i]
	if g.Op == Count {
		return Num(float64(a.n))
	}
	st := &a.s[i]
	switch g.Op {
	case DistinctCount:
		return Num(float64(len(st.set)))
	}
	if st.c == 0 {
		return Value{}
	}
	switch g.Op {
	case Sum:
		return Num(fsumValue(st.partials))
	case Min:
		return Num(st.min)
	case Max:
		return Num(st.max)
	case Mean:
		return Num(fsumValue(st.partials) / float64(st.c))
	}
	return Value{}
}

// fsumAdd adds x to the non-overlapping partials (Shewchuk's algorithm).
func fsumAdd(partials []float64, x float64) []float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return append(partials, x) // kept apart; fsumValue returns it
	}
	i := 0
	for _, y := range partials {
		if math.IsInf(y, 0) || math.IsNaN(y) {
			partials[i] = y
			i++
			continue
		}
		if math.Abs(x) < math.Abs(y) {
			x, y = y, x
		}
		hi := x + y
		lo := y - (hi - x)
		if lo != 0 {
			partials[i] = lo
			i++
		}
		x = hi
	}
	return append(partials[:i], x)
}

// fsumValue rounds the partials to the float64 nearest their exact sum.
func fsumValue(partials []float64) float64 {
	special := 0.0
	var finite []float64
	for _, p := range partials {
		if math.IsInf(p, 0) || math.IsNaN(p) {
			special += p
		} else {
			finite = append(finite, p)
		}
	}
	if special != 0 || math.IsNaN(special) {
		return special
	}
	n := len(finite)
	if n == 0 {
		return 0
	}
	hi := finite[n-1]
	lo := 0.0
	for n--; n > 0; {
		x := hi
		n--
		y := finite[n]
		hi = x + y
		yr := hi - x
		lo = y - yr
		if lo != 0 {
			break
		}
	}
	if n > 0 && ((lo < 0 && finite[n-1] < 0) || (lo > 0 && finite[n-1] > 0)) {
		y := lo * 2
		x := hi + y
		if y == x-hi {
			hi = x
		}
	}
	return hi
}

func (a *acc) encode(e *enc, aggs []Agg) {
	e.varint(a.n)
	if a.s == nil {
		return
	}
	for i, g := range aggs {
		if g.Op == Count {
			continue
		}
		st := &a.s[i]
		e.varint(st.c)
		if g.Op == DistinctCount {
			keys := make([]string, 0, len(st.set))
			for k := range st.set {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			e.uvarint(uint64(len(keys)))
			for _, k := range keys {
				e.str(k)
			}
			continue
		}
		e.f64(st.min)
		e.f64(st.max)
		e.uvarint(uint64(len(st.partials)))
		for _, p := range st.partials {
			e.f64(p)
		}
	}
}

func decodeAcc(d *dec, aggs []Agg) *acc {
	a := new(acc)
	decodeAccInto(d, aggs, a)
	return a
}

// decodeAccInto decodes an accumulator into a (whose old content is
// dropped: it shares nothing with what a held).
func decodeAccInto(d *dec, aggs []Agg, a *acc) {
	*a = makeAcc(aggs)
	a.n = d.varint()
	if a.s == nil {
		return
	}
	for i, g := range aggs {
		if g.Op == Count {
			continue
		}
		st := &a.s[i]
		st.c = d.varint()
		if g.Op == DistinctCount {
			n := d.count(1)
			if n > 0 {
				st.set = make(map[string]struct{}, n)
			}
			for j := 0; j < n; j++ {
				st.set[d.str()] = struct{}{}
			}
			continue
		}
		st.min = d.f64()
		st.max = d.f64()
		n := d.count(8)
		st.partials = make([]float64, n)
		for j := range st.partials {
			st.partials[j] = d.f64()
		}
	}
}

func checkAggs(aggs []Agg) error {
	seen := map[string]bool{}
	for _, g := range aggs {
		if seen[g.Name] {
			return fmt.Errorf("aggregation name %q is used twice", g.Name)
		}
		seen[g.Name] = true
		switch g.Op {
		case Count:
		case Sum, Min, Max, Mean, DistinctCount:
			if g.Field == "" {
				return fmt.Errorf("aggregation %s (%s) needs a field", g.Name, g.Op)
			}
		default:
			return fmt.Errorf("aggregation %s: unknown operation %q (want count, sum, min, max, mean or distinct_count)", g.Name, g.Op)
		}
	}
	return nil
}
