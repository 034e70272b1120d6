package stream

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unsafe"

	"github.com/ppml/ppml/stream/record"
)

// Plan is a compiled pipeline: what each task of each stage does.
type Plan struct {
	Name      string
	Source    Source
	Sink      Sink
	Time      EventTime
	KeyFields []string
	Window    *WindowFn // nil: no GroupByKey; rows go straight to the sink
	Lateness  time.Duration
	Aggs      []Agg

	dec     decoder
	timeIdx int
	steps   []func() DoFn
	// userSteps: a ParDo's DoFn may keep the strings of the rows it sees
	// (immutable, as Go promises), so the record bytes they share are
	// never reused; without one, every step copies what it keeps and a
	// source task decrypts each record into the same buffer.
	userSteps bool
	// strKey is the field of a single key field (-1: several), which
	// source tasks look keys up by when it holds a string; countOnly:
	// every aggregation is a count.
	strKey    int
	countOnly bool
	// tokenSrc is the field the last step before KeyBy tokenizes (-1:
	// that step is no Tokenize); fusedCount: source tasks count its words
	// on the fused path (wordcount.go), as the key is the word alone and
	// every aggregation a count.
	tokenSrc   int
	fusedCount bool
	// fusedText: the fused count path takes a text record whole, as the
	// plan tokenizes its lines as they come (Tokenize is its only step).
	fusedText bool
	keyIdx    []int
	aggIdx    []int
	schema    []string // after the steps

	// `,"name":` of each key field and aggregation in result lines, and
	// `"name":` of each field of rows written as they are
	keyNames, aggNames, rowNames [][]byte
}

// names computes the field names of output lines once, and the fast
// paths of source tasks.
func (pl *Plan) names() {
	pl.strKey = -1
	if len(pl.keyIdx) == 1 {
		pl.strKey = pl.keyIdx[0]
	}
	pl.countOnly = true
	for _, a := range pl.Aggs {
		pl.countOnly = pl.countOnly && a.Op == Count
	}
	pl.fusedCount = pl.tokenSrc >= 0 && pl.countOnly && pl.Window != nil && pl.Window.Kind != SessionKind &&
		len(pl.keyIdx) == 1 && pl.keyIdx[0] == len(pl.schema)-1
	pl.fusedText = pl.fusedCount && pl.Source.Format == FormatText && len(pl.steps) == 1
	quoted := func(sep string, fields []string) [][]byte {
		out := make([][]byte, len(fields))
		for i, f := range fields {
			out[i] = append(appendJSONString([]byte(sep), f), ':')
		}
		return out
	}
	pl.keyNames = quoted(",", pl.KeyFields)
	aggs := make([]string, len(pl.Aggs))
	for i, a := range pl.Aggs {
		aggs[i] = a.Name
	}
	pl.aggNames = quoted(",", aggs)
	pl.rowNames = quoted("", pl.schema)
}

// StreamSpec is a stream and its partition count.
type StreamSpec struct {
	Name       string
	Partitions int
}

// Aggregating reports whether the plan has a GroupByKey (two stages).
func (pl *Plan) Aggregating() bool { return pl.Window != nil }

// ShuffleStream is the internal stream between the two stages.
func (pl *Plan) ShuffleStream() string { return pl.Name + "-shuffle" }

// SinkPartitions is the number of tasks of the last stage.
func (pl *Plan) SinkPartitions() int {
	if pl.Aggregating() && pl.Sink.Partitions > 0 {
		return pl.Sink.Partitions
	}
	return pl.Source.Partitions
}

// Inputs lists the streams whose partitions are tasks, in task order.
func (pl *Plan) Inputs() []StreamSpec {
	in := []StreamSpec{{pl.Source.Stream, pl.Source.Partitions}}
	if pl.Aggregating() {
		in = append(in, StreamSpec{pl.ShuffleStream(), pl.SinkPartitions()})
	}
	return in
}

// Outputs lists the streams the plan writes.
func (pl *Plan) Outputs() []StreamSpec {
	var out []StreamSpec
	if pl.Aggregating() {
		out = append(out, StreamSpec{pl.ShuffleStream(), pl.SinkPartitions()})
	}
	out = append(out, StreamSpec{pl.Sink.Stream, pl.SinkPartitions()})
	if pl.Sink.DeadLetter != "" {
		out = append(out, StreamSpec{pl.Sink.DeadLetter, 1})
	}
	if pl.Sink.Late != "" {
		out = append(out, StreamSpec{pl.Sink.Late, 1})
	}
	return out
}

func (pl *Plan) checkStreams() error {
	if err := record.CheckStreamName(pl.Source.Stream); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if pl.Source.Partitions < 1 || pl.Source.Partitions > MaxPartitions {
		return fmt.Errorf("source %s: partitions must be 1 to %d", pl.Source.Stream, MaxPartitions)
	}
	if pl.Sink.Partitions < 0 || pl.Sink.Partitions > MaxPartitions {
		return fmt.Errorf("sink %s: partitions must be 0 (as many as the source) to %d", pl.Sink.Stream, MaxPartitions)
	}
	names := map[string]string{pl.Source.Stream: "source", pl.Name + "-shuffle": "shuffle"}
	for _, s := range []struct{ what, name string }{{"sink", pl.Sink.Stream}, {"dead-letter", pl.Sink.DeadLetter}, {"late", pl.Sink.Late}} {
		if s.name == "" && s.what != "sink" {
			continue
		}
		if err := record.CheckStreamName(s.name); err != nil {
			return fmt.Errorf("%s stream: %w", s.what, err)
		}
		if other, dup := names[s.name]; dup {
			return fmt.Errorf("the %s stream %s is also the %s stream", s.what, s.name, other)
		}
		names[s.name] = s.what
	}
	return nil
}

// MaxPartitions bounds the partitions of a stream.
const MaxPartitions = 1024

// OutputFields lists the fields of every result line, in order.
func (pl *Plan) OutputFields() []string {
	if !pl.Aggregating() {
		return pl.schema
	}
	f := []string{"window_start", "window_end"}
	f = append(f, pl.KeyFields...)
	for _, a := range pl.Aggs {
		f = append(f, a.Name)
	}
	if pl.Lateness > 0 {
		f = append(f, "pane")
	}
	return f
}

// appendRow appends a non-aggregated row as a JSON line.
func (pl *Plan) appendRow(b []byte, r *Row) []byte {
	b = append(b, '{')
	for i, n := range pl.rowNames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, n...)
		b = r.Vals[i].appendJSON(b)
	}
	return append(b, '}', '\n')
}

// appendResult appends one window result as a JSON line.
func (pl *Plan) appendResult(b []byte, w Window, key []Value, a *acc, pane int) []byte {
	return pl.appendResultAfter(b, resultPrefix(w), key, a, pane)
}

// resultPrefix is the start of every result line of window w.
func resultPrefix(w Window) []byte {
	b := append([]byte(nil), `{"window_start":`...)
	b = Str(fmtMillis(w.Start)).appendJSON(b)
	b = append(b, `,"window_end":`...)
	return Str(fmtMillis(w.End)).appendJSON(b)
}

// appendResultAfter appends a result line that starts with prefix
// (resultPrefix of its window, computed once for all its keys).
func (pl *Plan) appendResultAfter(b, prefix []byte, key []Value, a *acc, pane int) []byte {
	b = append(b, prefix...)
	for i, n := range pl.keyNames {
		b = append(b, n...)
		b = key[i].appendJSON(b)
	}
	for i, n := range pl.aggNames {
		b = append(b, n...)
		if pl.Aggs[i].Op == Count {
			b = strconv.AppendInt(b, a.n, 10)
			continue
		}
		b = a.result(pl.Aggs, i).appendJSON(b)
	}
	if pl.Lateness > 0 {
		b = append(b, `,"pane":`...)
		b = strconv.AppendInt(b, int64(pane), 10)
	}
	return append(b, '}', '\n')
}

// appendKey encodes the key fields of r (kind-tagged, so "1" and 1 differ).
func (pl *Plan) appendKey(b []byte, r *Row) []byte {
	e := enc{b: b}
	for _, i := range pl.keyIdx {
		e.value(r.Vals[i])
	}
	return e.b
}

func decodeKey(k string, n int) []Value {
	return decodeKeyInto(make([]Value, n), k)
}

// decodeKeyInto decodes key k into vals (one per key field), whose
// strings share k's bytes.
func decodeKeyInto(vals []Value, k string) []Value {
	d := dec{b: unsafe.Slice(unsafe.StringData(k), len(k))}
	for i := range vals {
		vals[i] = d.valueNoCopy()
	}
	return vals
}

func partitionOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}
