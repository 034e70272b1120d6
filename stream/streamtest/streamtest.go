// Package streamtest checks a stream.Log the way a consumer of the
// pipeline's output sees it: workers run as separate processes (the test
// binary re-executed), are killed with SIGKILL mid-stream, restarted,
// joined and stopped, and the decrypted output must equal what an
// uninterrupted run produces, with no record duplicated or missing. Each
// backend's tests call Main from TestMain and the Test functions.
package streamtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/memlog"
	"github.com/ppml/ppml/stream/record"
)

// Broker is a running log as producers and consumers see it.
type Broker interface {
	// Addr is what a worker process needs to connect.
	Addr() string
	Create(t testing.TB, name string, partitions int)
	Append(t testing.TB, name string, partition int, values ...[]byte)
	// Read returns the committed records of a partition.
	Read(t testing.TB, name string, partition int) [][]byte
}

// Backend is what a backend's tests provide.
type Backend struct {
	Name  string
	Start func(t *testing.T) Broker
	// Connect runs in the worker process: the Log at addr, and a function
	// that releases it.
	Connect func(addr string) (stream.Log, func(), error)
	// Dead is how long the log takes to hand a dead worker's tasks to
	// others (a lease or session timeout).
	Dead time.Duration
}

const (
	envWorker = "PPML_STREAMTEST_WORKER"
	envAddr   = "PPML_STREAMTEST_ADDR"
)

// Keys are fixed test keys, known to the test and its worker processes.
func Keys() (src, sink, state *envelope.LocalKey) {
	k := func(b byte) *envelope.LocalKey {
		l, err := envelope.NewLocalKey(bytes.Repeat([]byte{b}, 32))
		if err != nil {
			panic(err)
		}
		return l
	}
	return k(1), k(2), k(3)
}

// Partitions of the test source stream.
const Partitions = 3

// Plan is the pipeline the workers run: JSON events keyed and counted,
// summed and averaged in sliding windows, with dead letters and late side
// output.
func Plan() *stream.Plan {
	p := stream.NewPipeline("eo")
	in := stream.WithEventTime(p.Read(stream.Source{Stream: "events", Partitions: Partitions, Format: stream.FormatJSON}),
		stream.EventTime{Field: "t", Unit: stream.UnixMillis, MaxOutOfOrderness: 5 * time.Second})
	g := stream.GroupByKey(stream.WindowInto(stream.KeyBy(in, "k"), stream.SlidingWindows(20*time.Second, 10*time.Second), 5*time.Second),
		stream.Agg{Name: "n", Op: stream.Count}, stream.Agg{Name: "sum", Op: stream.Sum, Field: "v"},
		stream.Agg{Name: "mean", Op: stream.Mean, Field: "v"}, stream.Agg{Name: "d", Op: stream.DistinctCount, Field: "v"})
	stream.Write(g, stream.Sink{Stream: "eo-out", Partitions: 2, DeadLetter: "eo-dead", Late: "eo-late"})
	pl, err := p.Compile()
	if err != nil {
		panic(err)
	}
	return pl
}

// Workload is a deterministic random stream of JSON events, out of order
// within the watermark's bound (so results do not depend on timing), with
// records that belong to another stream and records that do not parse;
// each partition ends with an end record.
func Workload(perPartition int) [][][]byte {
	src, _, _ := Keys()
	rng := rand.New(rand.NewPCG(7, 11))
	w, _ := record.NewWriter("events", src, nil)
	other, _ := record.NewWriter("elsewhere", src, nil)
	out := make([][][]byte, Partitions)
	for p := range out {
		base := int64(0)
		for i := 0; i < perPartition; i++ {
			base += rng.Int64N(4000)
			var lines []string
			for j := 0; j < 1+rng.IntN(5); j++ {
				t := base - rng.Int64N(5000)
				lines = append(lines, fmt.Sprintf(`{"t":%d,"k":"k%d","v":%g}`, t, rng.IntN(7), float64(rng.IntN(100))/4))
			}
			body := []byte(strings.Join(lines, "\n"))
			var b []byte
			switch {
			case i%97 == 13:
				b, _ = other.Seal(uint32(p), base, body)
			case i%89 == 5:
				b, _ = w.Seal(uint32(p), base, []byte("{not json"))
			default:
				b, _ = w.Seal(uint32(p), base, body)
			}
			out[p] = append(out[p], b)
		}
		end, _ := w.SealEnd(uint32(p))
		out[p] = append(out[p], end)
	}
	return out
}

// Main runs a worker when the process was started as one (see Worker),
// and the tests otherwise.
func Main(m *testing.M, b Backend) {
	name := os.Getenv(envWorker)
	if name == "" {
		os.Exit(m.Run())
	}
	os.Exit(workerMain(b, name, os.Getenv(envAddr)))
}

func workerMain(b Backend, name, addr string) int {
	log, release, err := b.Connect(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		return 1
	}
	defer release()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	src, sink, state := Keys()
	_, err = stream.Run(ctx, stream.Config{Plan: Plan(), Log: log, Worker: name,
		Keys:               stream.Keys{Source: src, Sink: sink, State: state},
		CheckpointInterval: 50 * time.Millisecond,
		Logf: func(f string, a ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+f+"\n", a...)
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

// Output is what a consumer of the pipeline reads.
type Output struct {
	Results, Late, Dead []string // decrypted lines, sorted
	Ended               bool     // every result partition has its end record
}

// Reference runs the workload through one in-process worker on memlog.
func Reference(t testing.TB, data [][][]byte) Output {
	l := memlog.New(false)
	l.Create("events", Partitions)
	for p, recs := range data {
		if err := l.Append("events", p, recs...); err != nil {
			t.Fatal(err)
		}
	}
	src, sink, state := Keys()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := stream.Run(ctx, stream.Config{Plan: Plan(), Log: l, Worker: "ref", StopWhenEnded: true,
		Keys: stream.Keys{Source: src, Sink: sink, State: state}}); err != nil {
		t.Fatal(err)
	}
	return read(t, func(name string, p int) [][]byte { return l.Read(name, p) })
}

// ReadOutput reads and checks the pipeline's output from a broker: every
// record opens, and every writer's sequence numbers run 1, 2, 3... with
// neither gap nor repeat.
func ReadOutput(t testing.TB, b Broker) Output {
	return read(t, func(name string, p int) [][]byte { return b.Read(t, name, p) })
}

func read(t testing.TB, get func(string, int) [][]byte) Output {
	t.Helper()
	_, sink, _ := Keys()
	o := record.NewOpener(sink)
	pl := Plan()
	var out Output
	out.Ended = true
	lines := func(name string, parts int, end bool) []string {
		var ls []string
		for p := 0; p < parts; p++ {
			ended := false
			seqs := map[record.WriterID]uint64{}
			for i, b := range get(name, p) {
				r, err := o.Open(name, uint32(p), b)
				if err != nil {
					t.Fatalf("%s/%d record %d: %v", name, p, i, err)
				}
				if want := seqs[r.Writer] + 1; r.Seq != want {
					t.Errorf("%s/%d record %d: writer %s sequence %d, want %d (a record was duplicated or lost)", name, p, i, r.Writer, r.Seq, want)
				}
				seqs[r.Writer] = r.Seq
				if r.Kind == record.KindEnd {
					ended = true
					continue
				}
				for _, l := range strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n") {
					if name == pl.Sink.DeadLetter {
						// The sealed record and its position differ between
						// logs and runs; the reason and partition do not.
						l, _, _ = strings.Cut(l, `,"record_base64"`)
						if i, j := strings.Index(l, `,"position"`), strings.Index(l, `,"reason"`); i > 0 && j > i {
							l = l[:i] + l[j:]
						}
					}
					ls = append(ls, l)
				}
			}
			if end && !ended {
				out.Ended = false
			}
		}
		sort.Strings(ls)
		return ls
	}
	out.Results = lines(pl.Sink.Stream, pl.SinkPartitions(), true)
	out.Late = lines(pl.Sink.Late, 1, false)
	out.Dead = lines(pl.Sink.DeadLetter, 1, false)
	return out
}

// Compare fails the test where got and want differ.
func Compare(t testing.TB, got, want Output) {
	t.Helper()
	if !got.Ended {
		t.Error("not every result partition has its end record")
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{{"results", got.Results, want.Results}, {"late records", got.Late, want.Late}, {"dead letters", got.Dead, want.Dead}} {
		if strings.Join(c.got, "\n") == strings.Join(c.want, "\n") {
			continue
		}
		t.Errorf("%s: %d lines, want %d", c.name, len(c.got), len(c.want))
		for i := range min(len(c.got), len(c.want)) {
			if c.got[i] != c.want[i] {
				t.Errorf("first difference at line %d:\n got %s\nwant %s", i, c.got[i], c.want[i])
				break
			}
		}
	}
	if len(want.Results) == 0 || len(want.Dead) == 0 {
		t.Error("the reference output has no results or no dead letters: the workload is wrong")
	}
}
