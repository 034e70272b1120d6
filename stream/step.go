package stream

import (
	"fmt"
)

// DoFn is a stateless transformation of one row into zero or more rows
// (Beam's ParDo). It must be deterministic: a task that restarts replays
// its input and must produce the same output. Emitted rows are copied only
// as far as later steps need; emit may be called with the input row.
type DoFn func(r *Row, emit func(*Row))

// Op is a comparison of a filter condition.
type Op string

// Comparison operators. Numbers compare numerically, strings byte-wise;
// values of different kinds, and null, satisfy only ne.
const (
	Eq Op = "eq"
	Ne Op = "ne"
	Lt Op = "lt"
	Le Op = "le"
	Gt Op = "gt"
	Ge Op = "ge"
	In Op = "in"
)

// Cond is one filter condition: Field Op Value (or, for In, one of Values).
type Cond struct {
	Field  string
	Op     Op
	Value  Value
	Values []Value
}

func (c Cond) holds(v Value) bool {
	if c.Op == In {
		for _, w := range c.Values {
			if r, ok := compare(v, w); ok && r == 0 {
				return true
			}
		}
		return false
	}
	r, ok := compare(v, c.Value)
	if !ok {
		return c.Op == Ne
	}
	switch c.Op {
	case Eq:
		return r == 0
	case Ne:
		return r != 0
	case Lt:
		return r < 0
	case Le:
		return r <= 0
	case Gt:
		return r > 0
	case Ge:
		return r >= 0
	}
	return false
}

// filterFn keeps rows for which every condition holds.
func filterFn(conds []Cond, idx []int) DoFn {
	return func(r *Row, emit func(*Row)) {
		for i, c := range conds {
			if !c.holds(r.Vals[idx[i]]) {
				return
			}
		}
		emit(r)
	}
}

// tokenizeFn emits one row per word of field src, with the word appended
// as a new last field. Words are lower-cased runs of ASCII letters, digits
// and apostrophes, as in Spark's and the sql engine's WordCount.
//
// A word without capitals shares the bytes of the input string (which,
// like every string, never changes). A lower-cased word is written into
// an append-only arena whose bytes are never written again once handed
// out (a full chunk is left to the garbage collector, not reused): a step
// or DoFn that keeps a word keeps it intact, as Go strings promise.
func tokenizeFn(src int) DoFn {
	var out Row
	var arena strArena
	return func(r *Row, emit func(*Row)) {
		s := r.Vals[src].Text()
		out.Time = r.Time
		out.Vals = append(append(out.Vals[:0], r.Vals...), Value{})
		last := len(out.Vals) - 1
		for i := 0; i < len(s); {
			for i < len(s) && !wordByte(s[i]) {
				i++
			}
			j := i
			lower := true
			for j < len(s) && wordByte(s[j]) {
				if s[j] >= 'A' && s[j] <= 'Z' {
					lower = false
				}
				j++
			}
			if j > i {
				w := s[i:j]
				if !lower {
					w = arena.lower(w)
				}
				out.Vals[last] = Str(w)
				emit(&out)
			}
			i = j
		}
	}
}

func wordByte(c byte) bool { return wordBytes[c] }

// wordBytes marks the bytes of words: a table, as the tokenizer asks for
// every byte of the text.
var wordBytes = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '\''
	}
	return t
}()

// selectFn keeps the fields at idx, in that order.
func selectFn(idx []int) DoFn {
	var out Row
	return func(r *Row, emit func(*Row)) {
		out.Time = r.Time
		out.Vals = out.Vals[:0]
		for _, i := range idx {
			out.Vals = append(out.Vals, r.Vals[i])
		}
		emit(&out)
	}
}

// chain composes steps into one function ending in sink.
func chain(steps []DoFn, sink func(*Row)) func(*Row) {
	next := sink
	for i := len(steps) - 1; i >= 0; i-- {
		f, n := steps[i], next
		next = func(r *Row) { f(r, n) }
	}
	return next
}

func fieldIndex(schema []string, name string) (int, error) {
	for i, f := range schema {
		if f == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no field %q (fields at this step: %v)", name, schema)
}
