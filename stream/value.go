package stream

import (
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a Value.
type Kind uint8

// Value kinds. JSON null and absent fields are Null.
const (
	Null Kind = iota
	String
	Number
	Bool
)

// Value is one field of an event.
type Value struct {
	Kind Kind
	S    string  // String
	F    float64 // Number; Bool: 1 or 0
}

// Str returns a string value.
func Str(s string) Value { return Value{Kind: String, S: s} }

// Num returns a number value.
func Num(f float64) Value { return Value{Kind: Number, F: f} }

// Const is a constant written as text (in a manifest): a number when it
// parses as one — it then also equals its own text in string fields, so
// "5" and 5 both match 5 — else a string.
func Const(s string) Value {
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return Value{Kind: Number, F: f, S: s}
	}
	return Str(s)
}

// Text is the value as it appears in keys and distinct counts.
func (v Value) Text() string {
	switch v.Kind {
	case String:
		return v.S
	case Number:
		return formatNumber(v.F)
	case Bool:
		if v.F != 0 {
			return "true"
		}
		return "false"
	}
	return ""
}

// appendJSON appends v as JSON.
func (v Value) appendJSON(b []byte) []byte {
	switch v.Kind {
	case String:
		return strconv.AppendQuote(b, v.S)
	case Number:
		if math.IsInf(v.F, 0) || math.IsNaN(v.F) {
			return append(b, "null"...)
		}
		return append(b, formatNumber(v.F)...)
	case Bool:
		if v.F != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

// formatNumber prints integers without a fraction and other numbers in
// the shortest form that reads back exactly.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// compare orders two values of the same kind; ok is false across kinds,
// except that a string compares with a Const number by the number's text.
func compare(a, b Value) (int, bool) {
	if a.Kind == String && b.Kind == Number && b.S != "" {
		return strings.Compare(a.S, b.S), true
	}
	if a.Kind != b.Kind || a.Kind == Null {
		return 0, false
	}
	switch a.Kind {
	case String:
		return strings.Compare(a.S, b.S), true
	default:
		switch {
		case a.F < b.F:
			return -1, true
		case a.F > b.F:
			return 1, true
		}
		return 0, true
	}
}

// Row is one event: its event time (Unix milliseconds) and its fields, in
// the order of the schema the plan computed. Steps receive rows that are
// valid only during the call.
type Row struct {
	Time int64
	Vals []Value
}
