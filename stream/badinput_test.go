package stream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/record"
)

// TestBadInput: records that do not open, belong elsewhere, repeat, or do
// not decode are dead-lettered with the reason; the others are counted.
func TestBadInput(t *testing.T) {
	f := newFixture(t, false)
	pl := eventPlan(t, stream.TumblingWindows(time.Minute), 0, 0,
		stream.Agg{Name: "n", Op: stream.Count}, stream.Agg{Name: "s", Op: stream.Sum, Field: "v"})
	w, _ := record.NewWriter("events", f.src, nil)
	other, _ := record.NewWriter("payments", f.src, nil)
	stranger, _ := record.NewWriter("events", key(t, 9), nil)
	seal := func(w *record.Writer, body string) []byte {
		b, err := w.Seal(0, 0, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := seal(w, jsonLine(ts(0, 1), "a", 1))
	tampered := seal(w, jsonLine(ts(0, 2), "a", 100))
	tampered[len(tampered)-1] ^= 1
	f.log.Create("events", 1)
	f.log.Append("events", 0,
		good,
		[]byte("not a record at all"),
		seal(other, jsonLine(ts(0, 3), "a", 100)),
		seal(stranger, jsonLine(ts(0, 4), "a", 100)),
		tampered,
		good, // replayed
		seal(w, `{"t":5000,"k":"a","v":1}`+"\n"+`{"t":6000,"k":"a","v":"many"}`),
		seal(w, "{broken"),
		seal(w, `{"k":"a","v":1}`),
		seal(w, jsonLine(ts(0, 7), "a", 2)))
	end, _ := w.SealEnd(0)
	f.log.Append("events", 0, end)
	st := run(t, stream.Config{Plan: pl, Log: f.log, Keys: f.keys()})
	out, ended := f.output("out", f.sink)
	if !ended {
		t.Error("the stream did not end")
	}
	check(t, "results", out, `{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","k":"a","n":2,"s":3}`)
	dead, _ := f.output("dead", f.sink)
	want := []string{
		"not a ppml stream record",
		"written for stream payments partition 0 and read from stream events partition 0",
		"wrong key",
		"authentication failed",
		"replayed or reordered",
		"line 2: field v is not a number",
		"line 1: not a JSON object",
		"event time field t: missing",
	}
	if len(dead) != len(want) || st.DeadLetters != int64(len(want)) {
		t.Fatalf("%d dead letters (%d counted), want %d:\n%s", len(dead), st.DeadLetters, len(want), strings.Join(dead, "\n"))
	}
	all := strings.Join(dead, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no dead letter says %q:\n%s", w, all)
		}
	}
	if !strings.Contains(all, `"record_base64":"bm90IGEgcmVjb3JkIGF0IGFsbA=="`) {
		t.Error("the dead letter does not carry the record")
	}
}
