package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/record"
)

// workload is a deterministic random stream of JSON events: keys,
// out-of-order times (up to back ms), a few bad records.
func workload(f *fixture, partitions, perPartition int, back int64) [][][]byte {
	rng := rand.New(rand.NewPCG(7, 11))
	w, _ := record.NewWriter("events", f.src, nil)
	other, _ := record.NewWriter("elsewhere", f.src, nil)
	out := make([][][]byte, partitions)
	for p := range out {
		base := int64(0)
		for i := 0; i < perPartition; i++ {
			base += rng.Int64N(4000)
			var lines []string
			for j := 0; j < 1+rng.IntN(5); j++ {
				t := base - rng.Int64N(back)
				lines = append(lines, jsonLine(t, fmt.Sprintf("k%d", rng.IntN(7)), float64(rng.IntN(100))/4))
			}
			body := strings.Join(lines, "\n")
			var b []byte
			switch {
			case i%97 == 13:
				b, _ = other.Seal(uint32(p), base, []byte(body)) // belongs to another stream
			case i%89 == 5:
				b, _ = w.Seal(uint32(p), base, []byte("{not json")) // does not parse
			default:
				b, _ = w.Seal(uint32(p), base, []byte(body))
			}
			out[p] = append(out[p], b)
		}
		end, _ := w.SealEnd(uint32(p))
		out[p] = append(out[p], end)
	}
	return out
}

// A case is a workload whose results do not depend on how the inputs of
// the window tasks interleave, so they must equal an uninterrupted run's:
// several partitions with events within the out-of-orderness bound, or
// one partition with late events (its window tasks see one input).
type recoveryCase struct {
	name       string
	partitions int
	back       int64
}

var recoveryCases = []recoveryCase{{"3 partitions, in order within 5s", 3, 5000}, {"1 partition, late events", 1, 40000}}

func recoveryPlan(t testing.TB, c recoveryCase) *stream.Plan {
	p := stream.NewPipeline("rec")
	in := stream.WithEventTime(p.Read(stream.Source{Stream: "events", Partitions: c.partitions, Format: stream.FormatJSON}),
		stream.EventTime{Field: "t", Unit: stream.UnixMillis, MaxOutOfOrderness: 5 * time.Second})
	g := stream.GroupByKey(stream.WindowInto(stream.KeyBy(in, "k"), stream.SlidingWindows(20*time.Second, 10*time.Second), 5*time.Second),
		stream.Agg{Name: "n", Op: stream.Count}, stream.Agg{Name: "sum", Op: stream.Sum, Field: "v"},
		stream.Agg{Name: "mean", Op: stream.Mean, Field: "v"}, stream.Agg{Name: "d", Op: stream.DistinctCount, Field: "v"})
	stream.Write(g, stream.Sink{Stream: "out", Partitions: 2, DeadLetter: "dead", Late: "late"})
	pl, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

type outputs struct{ out, late, dead []string }

func (f *fixture) outputs() outputs {
	var o outputs
	o.out, _ = f.output("out", f.sink)
	o.late, _ = f.output("late", f.sink)
	o.dead, _ = f.output("dead", f.sink)
	for i, l := range o.dead { // the sealed record differs between runs of the workload
		o.dead[i], _, _ = strings.Cut(l, `,"record_base64"`)
	}
	return o
}

// feed appends the workload gradually, as producers would.
func feed(f *fixture, data [][][]byte, pause time.Duration) {
	for i := 0; ; i++ {
		more := false
		for p, recs := range data {
			if i < len(recs) {
				more = true
				if err := f.log.Append("events", p, recs[i]); err != nil {
					panic(err)
				}
			}
		}
		if !more {
			return
		}
		if i%10 == 0 {
			time.Sleep(pause)
		}
	}
}

func uninterrupted(t *testing.T, c recoveryCase) (outputs, []string) {
	f := newFixture(t, false)
	f.log.Create("events", c.partitions)
	for p, recs := range workload(f, c.partitions, 300, c.back) {
		f.log.Append("events", p, recs...)
	}
	st := run(t, stream.Config{Plan: recoveryPlan(t, c), Log: f.log, Keys: f.keys()})
	if st.DeadLetters == 0 || (st.Late == 0) != (c.partitions > 1) {
		t.Fatalf("unexpected workload: %+v", st)
	}
	inOrder, _ := f.outputInOrder("out", f.sink)
	return f.outputs(), inOrder
}

// TestCrashAndRestart kills a worker mid-stream (its uncommitted work is
// lost) and starts it again: the outputs equal those of an uninterrupted run.
func TestCrashAndRestart(t *testing.T) {
	for _, c := range recoveryCases {
		t.Run(c.name, func(t *testing.T) { crashAndRestart(t, c) })
	}
}

func crashAndRestart(t *testing.T, c recoveryCase) {
	want, wantInOrder := uninterrupted(t, c)
	f := newFixture(t, false)
	f.log.Create("events", c.partitions)
	data := workload(f, c.partitions, 300, c.back)
	ctx, cancel := context.WithCancel(context.Background())
	commits := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		stream.Run(ctx, stream.Config{Plan: recoveryPlan(t, c), Log: f.log, Keys: f.keys(), Worker: "w1",
			CheckpointInterval: 5 * time.Millisecond,
			OnCommit: func(stream.CommitInfo) {
				commits++
				if commits == 5 {
					f.log.Kill("rec", "w1")
				}
			}})
	}()
	feed(f, data, 2*time.Millisecond)
	for f.log.Members("rec") > 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if commits < 5 {
		t.Fatalf("only %d commits before the end of the input", commits)
	}
	run(t, stream.Config{Plan: recoveryPlan(t, c), Log: f.log, Keys: f.keys(), Worker: "w1"})
	compare(t, f.outputs(), want)
	if c.partitions == 1 {
		// One source partition: the window tasks' inputs are in one order
		// in both runs, so a task restored from its snapshot must cut the
		// very records of the uninterrupted run, lines in the same order
		// (ids are positions: a record committed before a crash and cut
		// again after it is dropped as a duplicate).
		got, _ := f.outputInOrder("out", f.sink)
		if strings.Join(got, "\n") != strings.Join(wantInOrder, "\n") {
			t.Error("result records differ in order from the uninterrupted run's")
		}
	}
}

// TestScaleOut runs three workers that join and leave mid-stream.
func TestScaleOut(t *testing.T) {
	c := recoveryCases[0]
	want, _ := uninterrupted(t, c)
	f := newFixture(t, false)
	f.log.Create("events", c.partitions)
	data := workload(f, c.partitions, 300, c.back)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	start := func(name string, ctx context.Context) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := stream.Run(ctx, stream.Config{Plan: recoveryPlan(t, c), Log: f.log, Keys: f.keys(), Worker: name, CheckpointInterval: 5 * time.Millisecond}); err != nil {
				t.Error(err)
			}
		}()
	}
	c2, leave := context.WithCancel(ctx)
	start("w1", ctx)
	start("w2", c2)
	go func() {
		time.Sleep(30 * time.Millisecond)
		start("w3", ctx) // joins: tasks rebalance
		time.Sleep(30 * time.Millisecond)
		leave() // w2 leaves gracefully
	}()
	feed(f, data, 2*time.Millisecond)
	for {
		if _, ended := f.output("out", f.sink); ended {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the workers did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	compare(t, f.outputs(), want)
}

func compare(t *testing.T, got, want outputs) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want []string
	}{{"results", got.out, want.out}, {"late", got.late, want.late}, {"dead letters", got.dead, want.dead}} {
		if strings.Join(c.got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s differ: %d lines, want %d", c.name, len(c.got), len(c.want))
			for i := range min(len(c.got), len(c.want)) {
				if c.got[i] != c.want[i] {
					t.Errorf("first difference at %d:\n%s\n%s", i, c.got[i], c.want[i])
					break
				}
			}
		}
	}
	if len(want.out) == 0 {
		t.Error("no results")
	}
}
