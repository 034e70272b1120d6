package stream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/stream"
)

// ts returns minutes:seconds after the epoch in milliseconds.
func ts(min, sec int) int64 { return int64(min*60+sec) * 1000 }

func jsonLine(t int64, k string, v float64) string {
	return `{"t":` + itoa(t) + `,"k":"` + k + `","v":` + ftoa(v) + "}"
}

func itoa(i int64) string   { return stream.Num(float64(i)).Text() }
func ftoa(f float64) string { return stream.Num(f).Text() }

func eventPlan(t testing.TB, w stream.WindowFn, ooo, lateness time.Duration, aggs ...stream.Agg) *stream.Plan {
	p := stream.NewPipeline("ev")
	in := stream.WithEventTime(p.Read(stream.Source{Stream: "events", Partitions: 1, Format: stream.FormatJSON}),
		stream.EventTime{Field: "t", Unit: stream.UnixMillis, MaxOutOfOrderness: ooo})
	g := stream.GroupByKey(stream.WindowInto(stream.KeyBy(in, "k"), w, lateness), aggs...)
	stream.Write(g, stream.Sink{Stream: "out", Partitions: 1, DeadLetter: "dead", Late: "late"})
	pl, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func runEvents(t *testing.T, pl *stream.Plan, lines ...string) (out, late []string) {
	var recs []rec
	for _, l := range lines {
		recs = append(recs, rec{0, l})
	}
	return runParts(t, pl, "events", "out", recs)
}

func check(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestOutOfOrderAndLate: with 10s of out-of-orderness, an event 5s late
// still counts; one that arrives after the watermark passed its window's
// end goes to the late side output.
func TestOutOfOrderAndLate(t *testing.T) {
	pl := eventPlan(t, stream.TumblingWindows(time.Minute), 10*time.Second, 0,
		stream.Agg{Name: "n", Op: stream.Count}, stream.Agg{Name: "sum", Op: stream.Sum, Field: "v"},
		stream.Agg{Name: "max", Op: stream.Max, Field: "v"}, stream.Agg{Name: "mean", Op: stream.Mean, Field: "v"})
	out, late := runEvents(t, pl,
		jsonLine(ts(0, 10), "a", 1),
		jsonLine(ts(1, 5), "a", 2),   // watermark 0:54.999
		jsonLine(ts(0, 55), "a", 4),  // out of order, in time
		jsonLine(ts(1, 20), "a", 8),  // watermark 1:09.999: window 0 fires
		jsonLine(ts(0, 59), "a", 16), // late
		jsonLine(ts(1, 30), "b", 0.5),
	)
	check(t, "results", out,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","k":"a","n":2,"sum":5,"max":4,"mean":2.5}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","k":"a","n":2,"sum":10,"max":8,"mean":5}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","k":"b","n":1,"sum":0.5,"max":0.5,"mean":0.5}`,
	)
	check(t, "late", late, `{"event_time":"1970-01-01T00:00:59Z","k":"a","v":16}`)
}

// TestAllowedLateness re-fires a window for an event within the allowed
// lateness (pane 1) and sends a later one to the side output.
func TestAllowedLateness(t *testing.T) {
	pl := eventPlan(t, stream.TumblingWindows(time.Minute), 0, 30*time.Second, stream.Agg{Name: "n", Op: stream.Count})
	out, late := runEvents(t, pl,
		jsonLine(ts(0, 10), "a", 1),
		jsonLine(ts(1, 10), "a", 1), // window 0 fires (pane 0)
		jsonLine(ts(0, 20), "a", 1), // within lateness: pane 1
		jsonLine(ts(1, 40), "a", 1), // window 0 purged
		jsonLine(ts(0, 30), "a", 1), // late
	)
	check(t, "results", out,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","k":"a","n":1,"pane":0}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","k":"a","n":2,"pane":1}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","k":"a","n":2,"pane":0}`,
	)
	check(t, "late", late, `{"event_time":"1970-01-01T00:00:30Z","k":"a"}`)
}

func TestSlidingWindows(t *testing.T) {
	pl := eventPlan(t, stream.SlidingWindows(time.Minute, 30*time.Second), 0, 0,
		stream.Agg{Name: "n", Op: stream.Count}, stream.Agg{Name: "min", Op: stream.Min, Field: "v"})
	out, _ := runEvents(t, pl, jsonLine(ts(0, 10), "a", 3), jsonLine(ts(0, 40), "a", 1), jsonLine(ts(1, 10), "a", 2))
	check(t, "results", out,
		`{"window_start":"1969-12-31T23:59:30Z","window_end":"1970-01-01T00:00:30Z","k":"a","n":1,"min":3}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","k":"a","n":2,"min":1}`,
		`{"window_start":"1970-01-01T00:00:30Z","window_end":"1970-01-01T00:01:30Z","k":"a","n":2,"min":1}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","k":"a","n":1,"min":2}`,
	)
}

func TestSessionWindows(t *testing.T) {
	pl := eventPlan(t, stream.SessionWindows(30*time.Second), 20*time.Second, 0,
		stream.Agg{Name: "n", Op: stream.Count}, stream.Agg{Name: "distinct", Op: stream.DistinctCount, Field: "v"})
	out, _ := runEvents(t, pl,
		jsonLine(ts(0, 0), "a", 1),
		jsonLine(ts(0, 50), "a", 2), // a new session: the gap is 50s
		jsonLine(ts(0, 20), "a", 1), // out of order, in time for the second session; the first one fired and was purged, as in Flink
		jsonLine(ts(0, 5), "b", 1),
		jsonLine(ts(3, 0), "b", 1),
	)
	check(t, "results", out,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:00:30Z","k":"a","n":1,"distinct":1}`,
		`{"window_start":"1970-01-01T00:00:05Z","window_end":"1970-01-01T00:00:35Z","k":"b","n":1,"distinct":1}`,
		`{"window_start":"1970-01-01T00:00:20Z","window_end":"1970-01-01T00:01:20Z","k":"a","n":2,"distinct":2}`,
		`{"window_start":"1970-01-01T00:03:00Z","window_end":"1970-01-01T00:03:30Z","k":"b","n":1,"distinct":1}`,
	)
}
