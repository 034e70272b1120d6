package stream

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
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
		return appendJSONString(b, v.S)
	case Number:
		if math.IsInf(v.F, 0) || math.IsNaN(v.F) {
			return append(b, "null"...)
		}
		return appendNumber(b, v.F)
	case Bool:
		if v.F != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped (\n, \r, \t, \u00XX), other text as it is,
// and bytes that are not UTF-8 as U+FFFD (as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// formatNumber prints integers without a fraction and other numbers in
// the shortest form that reads back exactly.
func formatNumber(f float64) string {
	return string(appendNumber(nil, f))
}

// appendNumber appends f as formatNumber prints it.
func appendNumber(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
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
// valid only during the call: the Row and its Vals slice are reused for
// the next event. The strings in it are ordinary immutable strings and may
// be kept (they may share a record's decrypted bytes: clone a small one
// kept for long, so it does not hold the whole record in memory).
type Row struct {
	Time int64
	Vals []Value
}
