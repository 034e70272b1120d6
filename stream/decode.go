package stream

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Format is how a record body holds events: text (one event per line, in
// the field "line"), json (one JSON object per line) or csv (one row per
// line, columns named by the plan; no header).
type Format string

// Formats.
const (
	FormatText Format = "text"
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
)

// TimeUnit says how an event-time field is written.
type TimeUnit string

// Event-time units.
const (
	UnixMillis  TimeUnit = "unix_ms"
	UnixSeconds TimeUnit = "unix_s"
	RFC3339     TimeUnit = "rfc3339"
)

// decoder turns a record body into rows holding the fields the plan uses.
type decoder struct {
	format   Format
	fields   []string // dotted paths (json), column names (csv), "line" (text)
	numeric  []bool   // the field must be a number (or absent)
	columns  []string // csv: every column, in order
	colIdx   []int    // csv: column of each field
	timeIdx  int      // field with the event time; -1: the record's time
	timeUnit TimeUnit
}

// errDecode marks a body that does not decode; the record is dead-lettered.
type errDecode struct{ msg string }

func (e *errDecode) Error() string { return e.msg }

func decodeErr(line int, format string, args ...any) error {
	return &errDecode{msg: fmt.Sprintf("line %d: ", line) + fmt.Sprintf(format, args...)}
}

// decode calls emit for each event of body, or returns an error and emits
// nothing: a record is processed whole or dead-lettered whole.
func (d *decoder) decode(body []byte, recTime int64, emit func(*Row)) error {
	switch d.format {
	case FormatText:
		row := Row{Time: recTime, Vals: make([]Value, len(d.fields))}
		// The lines share body's bytes, which the caller must not write
		// again while a string may point at them: a source task decrypts
		// into a buffer it reuses only when the plan has no ParDo (whose
		// DoFn may keep strings, immutable as Go promises); the engine's
		// own steps copy what they keep (keys, distinct sets, late rows).
		s := unsafe.String(unsafe.SliceData(body), len(body))
		for len(s) > 0 {
			line := s
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				line, s = s[:i], s[i+1:]
			} else {
				s = ""
			}
			line = strings.TrimSuffix(line, "\r")
			for i := range row.Vals {
				row.Vals[i] = Str(line)
			}
			emit(&row)
		}
		return nil
	case FormatJSON:
		return d.decodeJSON(body, recTime, emit)
	case FormatCSV:
		return d.decodeCSV(body, recTime, emit)
	}
	return fmt.Errorf("unknown format %q", d.format)
}

func (d *decoder) decodeJSON(body []byte, recTime int64, emit func(*Row)) error {
	var rows []Row
	line := 0
	for len(body) > 0 {
		var ln []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			ln, body = body[:i], body[i+1:]
		} else {
			ln, body = body, nil
		}
		line++
		ln = bytes.TrimSpace(ln)
		if len(ln) == 0 {
			continue
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(ln))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return decodeErr(line, "not a JSON object: %s", jsonErr(err))
		}
		if dec.More() {
			return decodeErr(line, "more than one JSON value on the line")
		}
		if obj == nil {
			return decodeErr(line, "not a JSON object: null")
		}
		r := Row{Time: recTime, Vals: make([]Value, len(d.fields))}
		for i, f := range d.fields {
			v, err := jsonValue(lookup(obj, f))
			if err != nil {
				return decodeErr(line, "field %s: %v", f, err)
			}
			r.Vals[i] = v
		}
		if err := d.finish(&r, line); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	for i := range rows {
		emit(&rows[i])
	}
	return nil
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	if err == io.EOF {
		return "empty"
	}
	return err.Error()
}

func lookup(obj map[string]any, path string) any {
	var cur any = obj
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func jsonValue(x any) (Value, error) {
	switch v := x.(type) {
	case nil:
		return Value{}, nil
	case string:
		return Str(v), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return Value{}, fmt.Errorf("number %s out of range", v)
		}
		return Num(f), nil
	case bool:
		if v {
			return Value{Kind: Bool, F: 1}, nil
		}
		return Value{Kind: Bool}, nil
	}
	return Value{}, fmt.Errorf("is an object or array, not a value")
}

func (d *decoder) decodeCSV(body []byte, recTime int64, emit func(*Row)) error {
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = len(d.columns)
	cr.ReuseRecord = true
	var rows []Row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// FieldPos is only defined after a successful Read: it
			// panics on a row that did not parse.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return decodeErr(pe.Line, "CSV: %v", pe.Err)
			}
			return decodeErr(0, "CSV: %v", err)
		}
		line, _ := cr.FieldPos(0)
		r := Row{Time: recTime, Vals: make([]Value, len(d.fields))}
		for i, c := range d.colIdx {
			s := rec[c]
			switch {
			case s == "":
				r.Vals[i] = Value{}
			case d.numeric[i]:
				f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
				if err != nil {
					return decodeErr(line, "column %s is not a number", d.fields[i])
				}
				r.Vals[i] = Num(f)
			default:
				r.Vals[i] = Str(s)
			}
		}
		if err := d.finish(&r, line); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	for i := range rows {
		emit(&rows[i])
	}
	return nil
}

// finish checks numeric fields and sets the row's event time.
func (d *decoder) finish(r *Row, line int) error {
	for i, v := range r.Vals {
		if d.numeric[i] && v.Kind != Number && v.Kind != Null {
			return decodeErr(line, "field %s is not a number", d.fields[i])
		}
	}
	if d.timeIdx < 0 {
		return nil
	}
	v := r.Vals[d.timeIdx]
	t, err := eventTime(v, d.timeUnit)
	if err != nil {
		return decodeErr(line, "event time field %s: %v", d.fields[d.timeIdx], err)
	}
	r.Time = t
	return nil
}

func eventTime(v Value, unit TimeUnit) (int64, error) {
	switch unit {
	case UnixMillis, UnixSeconds:
		f := v.F
		if v.Kind == String {
			var err error
			if f, err = strconv.ParseFloat(v.S, 64); err != nil {
				return 0, fmt.Errorf("not a number")
			}
		} else if v.Kind != Number {
			return 0, fmt.Errorf("missing")
		}
		if unit == UnixSeconds {
			f *= 1000
		}
		if f < -1e15 || f > 1e15 {
			return 0, fmt.Errorf("out of range")
		}
		return int64(f), nil
	case RFC3339:
		if v.Kind != String {
			return 0, fmt.Errorf("missing")
		}
		t, err := time.Parse(time.RFC3339Nano, v.S)
		if err != nil {
			return 0, fmt.Errorf("not an RFC 3339 time")
		}
		return t.UnixMilli(), nil
	}
	return 0, fmt.Errorf("unknown time unit %q", unit)
}
