package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/memlog"
	"github.com/ppml/ppml/stream/record"
)

func key(t testing.TB, b byte) *envelope.LocalKey {
	k, err := envelope.NewLocalKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type fixture struct {
	t         testing.TB
	log       *memlog.Log
	src, sink *envelope.LocalKey
	state     *envelope.LocalKey
}

func newFixture(t testing.TB, bounded bool) *fixture {
	return &fixture{t: t, log: memlog.New(bounded), src: key(t, 1), sink: key(t, 2), state: key(t, 3)}
}

func (f *fixture) keys() stream.Keys {
	return stream.Keys{Source: f.src, Sink: f.sink, State: f.state}
}

// produce seals one record per body (event time, body) into a partition,
// then an end record when end is set.
func (f *fixture) produce(w *record.Writer, partition int, end bool, recs ...rec) {
	f.t.Helper()
	f.log.Create(w.Stream(), partition+1)
	for _, r := range recs {
		b, err := w.Seal(uint32(partition), r.time, []byte(r.body))
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.log.Append(w.Stream(), partition, b); err != nil {
			f.t.Fatal(err)
		}
	}
	if end {
		b, _ := w.SealEnd(uint32(partition))
		if err := f.log.Append(w.Stream(), partition, b); err != nil {
			f.t.Fatal(err)
		}
	}
}

type rec struct {
	time int64
	body string
}

// output decrypts every record of a stream: result lines sorted, and
// whether every partition has its end record.
func (f *fixture) output(name string, kr envelope.KeyResolver) (lines []string, ended bool) {
	f.t.Helper()
	lines, ended = f.outputInOrder(name, kr)
	sort.Strings(lines)
	return lines, ended
}

// runParts writes parts[p] to partition p of stream source (each
// partition ended), runs pl over them to the end, and returns the lines
// of the stream sink and of the late stream, sorted.
func runParts(t *testing.T, pl *stream.Plan, source, sink string, parts ...[]rec) (out, late []string) {
	t.Helper()
	f := newFixture(t, false)
	w, _ := record.NewWriter(source, f.src, nil)
	for p, recs := range parts {
		f.produce(w, p, true, recs...)
	}
	run(t, stream.Config{Plan: pl, Log: f.log, Keys: f.keys()})
	out, ended := f.output(sink, f.sink)
	if !ended {
		t.Error("not every sink partition has its end record")
	}
	late, _ = f.output("late", f.sink)
	return out, late
}

// outputInOrder is output's lines as the records hold them, partition
// after partition.
func (f *fixture) outputInOrder(name string, kr envelope.KeyResolver) (lines []string, ended bool) {
	f.t.Helper()
	o := record.NewOpener(kr)
	ended = true
	for p := 0; p < f.log.Partitions(name); p++ {
		end := false
		for _, b := range f.log.Read(name, p) {
			r, err := o.Open(name, uint32(p), b)
			if err != nil {
				f.t.Fatalf("output %s/%d: %v", name, p, err)
			}
			if r.Kind == record.KindEnd {
				end = true
				continue
			}
			for _, l := range strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n") {
				lines = append(lines, l)
			}
		}
		ended = ended && end
	}
	return lines, ended
}

func run(t *testing.T, cfg stream.Config) stream.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.Worker == "" {
		cfg.Worker = "w1"
	}
	cfg.StopWhenEnded = true
	cfg.Logf = t.Logf
	cfg.CheckpointInterval = 20 * time.Millisecond
	st, err := stream.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the worker did not finish")
	}
	return st
}

func wordcountPlan(t testing.TB, partitions int, window time.Duration) *stream.Plan {
	p := stream.NewPipeline("wc")
	lines := p.Read(stream.Source{Stream: "text", Partitions: partitions, Format: stream.FormatText})
	words := stream.Tokenize(lines, "line", "word")
	w := stream.WindowInto(stream.KeyBy(words, "word"), stream.TumblingWindows(window), 0)
	stream.Write(stream.GroupByKey(w, stream.Agg{Name: "count", Op: stream.Count}),
		stream.Sink{Stream: "counts", Partitions: 3, DeadLetter: "dead", Late: "late"})
	pl, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestWordCountWindows(t *testing.T) {
	f := newFixture(t, false)
	pl := wordcountPlan(t, 2, time.Minute)
	w0, _ := record.NewWriter("text", f.src, nil)
	w1, _ := record.NewWriter("text", f.src, nil)
	min := int64(60_000)
	f.produce(w0, 0, true, rec{0, "the cat\nThe dog"}, rec{min + 1, "a cat"}, rec{2*min + 5, "end"})
	f.produce(w1, 1, true, rec{10, "the bird"}, rec{min + 30, "the the"})
	defer dump(t, f, "text", "wc-shuffle", "counts", "dead")
	run(t, stream.Config{Plan: pl, Log: f.log, Keys: f.keys()})
	got, ended := f.output("counts", f.sink)
	if !ended {
		t.Error("not every sink partition has its end record")
	}
	want := []string{
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"bird","count":1}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"cat","count":1}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"dog","count":1}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"the","count":3}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","word":"a","count":1}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","word":"cat","count":1}`,
		`{"window_start":"1970-01-01T00:01:00Z","window_end":"1970-01-01T00:02:00Z","word":"the","count":2}`,
		`{"window_start":"1970-01-01T00:02:00Z","window_end":"1970-01-01T00:03:00Z","word":"end","count":1}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var _ = fmt.Sprint
