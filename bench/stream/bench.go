// Package streambench is `ppml bench stream`: WordCount over encrypted
// stream records through embedded NATS JetStream with 1-minute event-time
// windows and checkpoints, on one and on two workers, against two
// baselines measured in the same run — a plain consumer that reads the same
// text from the same broker and counts words without decryption, windows
// or checkpoints (the transport ceiling), and a plain in-memory Go word
// count.
package streambench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/usage"
	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/jetstream"
	"github.com/ppml/ppml/stream/record"
)

// Config is one benchmark run.
type Config struct {
	Size           int64         // bytes of text (default 50 MB)
	LinesPerRecord int           // default 100
	Partitions     int           // source partitions (default 4)
	Workers        []int         // pipeline runs (default 1 and 2 workers)
	Checkpoint     time.Duration // default 2s
	// Rounds is how many times the baselines and pipelines are measured
	// (default 3), interleaved — memory, transport, each pipeline, then
	// again — so that a slow stretch of a shared machine falls on every
	// kind of run alike; a Result holds the median.
	Rounds int
	// Latency runs publish LatencyRecords records at LatencyRate per
	// second (default 3,000 at half the slowest pipeline's throughput, at
	// most 1,000/s: below saturation, so latency is not queueing) while
	// the consumer or pipeline runs.
	LatencyRecords int
	LatencyRate    int
	Dir            string // JetStream's store (default: a temporary directory)
	// CPUProfile, when set, receives a CPU profile (pprof) of each
	// pipeline's measured run in the file CPUProfile-Nw.pprof (N workers).
	CPUProfile string
	// NoWarmup measures cold runs: the first measured run then also pays
	// for growing the heap.
	NoWarmup bool
	Progress func(string)
	Logf     func(string, ...any) // the workers' log lines
}

// Result is one measured configuration.
type Result struct {
	Name          string  `json:"name"`
	Workers       int     `json:"workers,omitempty"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_s"`
	MBPerSec      float64 `json:"mb_per_s"`
	P50LatencyMs  float64 `json:"p50_latency_ms,omitempty"`
	P99LatencyMs  float64 `json:"p99_latency_ms,omitempty"`
	// CPUSeconds is the process's CPU time (user and system, the embedded
	// broker included) during the run: a fairer measure than wall clock on
	// a busy machine.
	CPUSeconds float64 `json:"cpu_seconds"`
	// SystemCPUSeconds is the part of CPUSeconds spent in the kernel
	// (system calls, page faults): what moves with the machine — how
	// fast it hands out fresh memory and file pages — rather than with
	// ppml's code. A pipeline writes its shuffle and results to the
	// broker's files; the transport writes nothing.
	SystemCPUSeconds float64 `json:"system_cpu_seconds"`
	// Ratios are seconds over the baseline's seconds (1.3: 30% slower),
	// by wall clock and by CPU time.
	RatioVsTransport    float64 `json:"ratio_vs_transport,omitempty"`
	RatioVsMemory       float64 `json:"ratio_vs_memory,omitempty"`
	CPURatioVsTransport float64 `json:"cpu_ratio_vs_transport,omitempty"`
	CPURatioVsMemory    float64 `json:"cpu_ratio_vs_memory,omitempty"`
	Checkpoints         int64   `json:"checkpoints,omitempty"`
	// Rounds are the seconds of each round (Seconds is their median);
	// a pipeline's ratios are the medians of its ratios to the baseline
	// measured in the same round.
	Rounds []float64 `json:"seconds_by_round"`
}

// Report is the whole run.
type Report struct {
	TextBytes      int64    `json:"text_bytes"`
	Records        int      `json:"records"`
	LinesPerRecord int      `json:"lines_per_record"`
	Words          int64    `json:"words"`
	DistinctWords  int      `json:"distinct_words"`
	Partitions     int      `json:"partitions"`
	Windows        int      `json:"windows"`
	CPUs           int      `json:"cpus"`
	LoadAverage    float64  `json:"load_average"` // 1-minute, before the run: other work on the machine
	Checkpoint     string   `json:"checkpoint_interval"`
	Rounds         int      `json:"rounds"`
	Memory         Result   `json:"memory"`
	Transport      Result   `json:"transport"`
	Pipeline       []Result `json:"pipeline"`
	LatencyRate    int      `json:"latency_publish_rate"` // records/s during the latency runs
	Target         float64  `json:"target_ratio_vs_transport"`
	Verified       bool     `json:"verified"` // the transport's and every pipeline's counts equal the in-memory count
	// Warmup: the transport and a 1-worker pipeline each ran once,
	// unmeasured, right before their measured runs, so that no measured
	// run pays for growing the process's heap (page faults) that a
	// long-running worker would have grown already.
	Warmup bool `json:"warmup"`
}

func (c *Config) defaults() {
	if c.Size <= 0 {
		c.Size = 50_000_000
	}
	if c.LinesPerRecord <= 0 {
		c.LinesPerRecord = 100
	}
	if c.Partitions <= 0 {
		c.Partitions = 4
	}
	if len(c.Workers) == 0 {
		c.Workers = []int{1, 2}
	}
	if c.Checkpoint <= 0 {
		c.Checkpoint = 2 * time.Second // the engine's default
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.LatencyRecords <= 0 {
		c.LatencyRecords = 3000
	}

	if c.Progress == nil {
		c.Progress = func(string) {}
	}
}

type bench struct {
	cfg         Config
	e           *jetstream.Embedded
	nc          *nats.Conn
	j           js.JetStream
	src, sink   *envelope.LocalKey
	state       *envelope.LocalKey
	bodies      [][]byte // plaintext record bodies
	times       []int64  // event time of each record
	memory      map[string]int64
	textBytes   int64
	windowCount int
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ppml-bench-stream-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	b := &bench{cfg: cfg}
	var err error
	if b.e, err = jetstream.StartEmbedded(dir, false); err != nil {
		return nil, err
	}
	defer b.e.Shutdown()
	if b.nc, err = b.e.Connect(); err != nil {
		return nil, err
	}
	defer b.nc.Close()
	if b.j, err = js.New(b.nc, js.WithPublishAsyncMaxPending(1024)); err != nil {
		return nil, err
	}
	for _, k := range []**envelope.LocalKey{&b.src, &b.sink, &b.state} {
		if *k, err = randomKey(); err != nil {
			return nil, err
		}
	}
	cfg.Progress("generating text")
	text := Text(cfg.Size)
	b.textBytes = int64(len(text))
	b.split(text)
	rep := &Report{TextBytes: b.textBytes, Records: len(b.bodies), LinesPerRecord: cfg.LinesPerRecord, Partitions: cfg.Partitions,
		CPUs: runtime.GOMAXPROCS(0), Checkpoint: cfg.Checkpoint.String(), Rounds: cfg.Rounds, Target: 1.3, Verified: true}
	rep.LoadAverage = usage.LoadAverage()
	rep.Windows = b.windowCount

	cfg.Progress("publishing the records")
	if err := b.publish(ctx, "bench-plain", false, nil); err != nil {
		return nil, err
	}
	if err := b.publish(ctx, "bench-text", true, nil); err != nil {
		return nil, err
	}

	// Each kind of run once, unmeasured, before the measured rounds: the
	// heap then has the size the measured runs need (a pipeline needs a
	// larger one than the transport, and a smaller run in between lets
	// the runtime return memory to the system, which the next run faults
	// in again), for the baseline and the pipelines alike.
	if !cfg.NoWarmup {
		cfg.Progress("warming up the transport")
		if _, _, err := b.transport(ctx, "bench-plain", len(b.bodies), nil); err != nil {
			return nil, err
		}
		cfg.Progress("warming up the pipeline")
		if _, err := b.pipeline(ctx, "bench-warmup", "bench-text", 1, len(b.bodies), nil, ""); err != nil {
			return nil, err
		}
		rep.Warmup = true
	}
	type sample struct {
		d   time.Duration
		cpu usage.Times
	}
	var memory, transport []sample
	pipes := make([][]sample, len(cfg.Workers))
	ckpts := make([]int64, len(cfg.Workers))
	for round := 0; round < cfg.Rounds; round++ {
		of := fmt.Sprintf("round %d of %d: ", round+1, cfg.Rounds)
		cfg.Progress(of + "in-memory word count")
		start, cpu := time.Now(), usage.CPUTimes()
		counts := map[string]int64{}
		words := countWords(text, counts)
		memory = append(memory, sample{time.Since(start), usage.CPUTimes().Sub(cpu)})
		if b.memory == nil {
			b.memory, rep.Words, rep.DistinctWords = counts, words, len(counts)
		} else if !sameCounts(counts, b.memory) {
			rep.Verified = false
		}

		cfg.Progress(of + "transport baseline")
		cpu = usage.CPUTimes()
		d, counts, err := b.transport(ctx, "bench-plain", len(b.bodies), nil)
		if err != nil {
			return nil, err
		}
		transport = append(transport, sample{d, usage.CPUTimes().Sub(cpu)})
		if !sameCounts(counts, b.memory) {
			rep.Verified = false
		}
		for i, n := range cfg.Workers {
			cfg.Progress(fmt.Sprintf("%spipeline, %d worker(s)", of, n))
			prof := ""
			if cfg.CPUProfile != "" && round == 0 {
				prof = fmt.Sprintf("%s-%dw.pprof", cfg.CPUProfile, n)
			}
			run, err := b.pipeline(ctx, fmt.Sprintf("bench-wc-%d-%d-%dw", round, i, n), "bench-text", n, len(b.bodies), nil, prof)
			if err != nil {
				return nil, err
			}
			pipes[i] = append(pipes[i], sample{run.d, run.cpu})
			ckpts[i] = max(ckpts[i], run.checkpoints)
			if !sameCounts(run.counts, b.memory) {
				rep.Verified = false
			}
		}
	}
	// A Result of the rounds: the medians of the seconds and CPU seconds
	// and of the ratios to the baselines of the same round.
	summary := func(name string, workers int, ss []sample) Result {
		var ds, cs, sys, rt, rm, crt, crm []float64
		for k, x := range ss {
			cpu := x.cpu.Total().Seconds()
			ds = append(ds, x.d.Seconds())
			cs = append(cs, cpu)
			sys = append(sys, x.cpu.System.Seconds())
			rt = append(rt, x.d.Seconds()/transport[k].d.Seconds())
			rm = append(rm, x.d.Seconds()/memory[k].d.Seconds())
			crt = append(crt, cpu/transport[k].cpu.Total().Seconds())
			crm = append(crm, cpu/memory[k].cpu.Total().Seconds())
		}
		r := b.result(name, workers, median(ds), median(cs))
		r.SystemCPUSeconds = median(sys)
		r.Rounds = ds
		if workers > 0 {
			r.RatioVsTransport, r.RatioVsMemory = median(rt), median(rm)
			r.CPURatioVsTransport, r.CPURatioVsMemory = median(crt), median(crm)
		}
		return r
	}
	rep.Memory = summary("memory", 0, memory)
	rep.Transport = summary("transport", 0, transport)
	for i, n := range cfg.Workers {
		r := summary("pipeline", n, pipes[i])
		r.Checkpoints = ckpts[i]
		rep.Pipeline = append(rep.Pipeline, r)
	}
	// Latency at a rate every configuration sustains.
	if b.cfg.LatencyRate <= 0 {
		slowest := rep.Transport.RecordsPerSec
		for _, r := range rep.Pipeline {
			slowest = min(slowest, r.RecordsPerSec)
		}
		b.cfg.LatencyRate = max(1, min(1000, int(slowest/2)))
	}
	rep.LatencyRate = b.cfg.LatencyRate
	cfg.Progress(fmt.Sprintf("latency at %d records/s", b.cfg.LatencyRate))
	lat, err := b.transportLatency(ctx)
	if err != nil {
		return nil, err
	}
	rep.Transport.P50LatencyMs, rep.Transport.P99LatencyMs = pct(lat, 0.5), pct(lat, 0.99)
	for i, n := range cfg.Workers {
		lat, err := b.pipelineLatency(ctx, i, n)
		if err != nil {
			return nil, err
		}
		rep.Pipeline[i].P50LatencyMs, rep.Pipeline[i].P99LatencyMs = pct(lat, 0.5), pct(lat, 0.99)
	}
	return rep, nil
}

func randomKey() (*envelope.LocalKey, error) {
	s := make([]byte, envelope.LocalKeySize)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	return envelope.NewLocalKey(s)
}

// split cuts the text into record bodies and stamps them with event times
// spread over ten minutes: ten 1-minute windows.
func (b *bench) split(text []byte) {
	for len(text) > 0 {
		end := 0
		for n := 0; n < b.cfg.LinesPerRecord && end < len(text); n++ {
			i := bytes.IndexByte(text[end:], '\n')
			if i < 0 {
				end = len(text)
				break
			}
			end += i + 1
		}
		b.bodies = append(b.bodies, text[:end])
		text = text[end:]
	}
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	span := int64(10 * 60 * 1000)
	for i := range b.bodies {
		b.times = append(b.times, t0+span*int64(i)/int64(len(b.bodies)))
	}
	b.windowCount = 10
}

func (b *bench) result(name string, workers int, s, cpu float64) Result {
	return Result{Name: name, Workers: workers, Seconds: s, RecordsPerSec: float64(len(b.bodies)) / s, MBPerSec: float64(b.textBytes) / 1e6 / s,
		CPUSeconds: cpu}
}

// median of xs (not empty); xs is left as it was.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// publish writes the records round-robin over the partitions, sealed (and
// ended with end records) or plain. With pace, it publishes at
// LatencyRate and records each record's publish time by stream sequence.
func (b *bench) publish(ctx context.Context, name string, sealed bool, pace *paced) error {
	if err := jetstream.CreateStream(ctx, b.j, name, jetstream.Options{}); err != nil {
		return err
	}
	var w *record.Writer
	if sealed {
		var err error
		if w, err = record.NewWriter(name, b.src, nil); err != nil {
			return err
		}
	}
	n := len(b.bodies)
	if pace != nil {
		n = min(n, b.cfg.LatencyRecords)
	}
	var futs []js.PubAckFuture
	flush := func() error {
		err := waitAll(ctx, b.j, futs)
		futs = futs[:0]
		return err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		p := i % b.cfg.Partitions
		data := b.bodies[i]
		if sealed {
			var err error
			if data, err = w.Seal(uint32(p), b.times[i], data); err != nil {
				return err
			}
		}
		if pace != nil {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(b.cfg.LatencyRate))); d > 0 {
				time.Sleep(d)
			}
			t := time.Now()
			ack, err := b.j.Publish(ctx, jetstream.Subject(name, p), data)
			if err != nil {
				return err
			}
			pace.add(p, ack.Sequence, t)
			continue
		}
		f, err := b.j.PublishAsync(jetstream.Subject(name, p), data)
		if err != nil {
			return err
		}
		futs = append(futs, f)
		if len(futs) == 512 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if sealed {
		for p := 0; p < b.cfg.Partitions; p++ {
			end, err := w.SealEnd(uint32(p))
			if err != nil {
				return err
			}
			f, err := b.j.PublishAsync(jetstream.Subject(name, p), end)
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
	}
	return flush()
}

func waitAll(ctx context.Context, j js.JetStream, futs []js.PubAckFuture) error {
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// paced tracks publish times by partition and stream sequence.
type paced struct {
	mu    sync.Mutex
	parts map[int][]pub
	lat   []time.Duration
}

type pub struct {
	seq uint64
	at  time.Time
}

func newPaced() *paced { return &paced{parts: map[int][]pub{}} }

func (p *paced) add(part int, seq uint64, at time.Time) {
	p.mu.Lock()
	p.parts[part] = append(p.parts[part], pub{seq, at})
	p.mu.Unlock()
}

// upTo records the latency of every record of part up to seq, done at t.
func (p *paced) upTo(part int, seq uint64, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.parts[part]
	i := 0
	for ; i < len(q) && q[i].seq <= seq; i++ {
		p.lat = append(p.lat, t.Sub(q[i].at))
	}
	p.parts[part] = q[i:]
}

func (p *paced) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.lat...)
}

// transport reads n records of every partition of a plain stream, one
// consumer per partition, and counts their words: the ceiling of reading
// the text through the broker. It returns the time until every record was
// counted and the counts (summed over the partitions after the
// measurement).
func (b *bench) transport(ctx context.Context, name string, n int, pace *paced) (time.Duration, map[string]int64, error) {
	st, err := b.j.Stream(ctx, jetstream.StreamName(name))
	if err != nil {
		return 0, nil, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, b.cfg.Partitions)
	counts := make([]map[string]int64, b.cfg.Partitions)
	for p := 0; p < b.cfg.Partitions; p++ {
		want := n / b.cfg.Partitions
		if p < n%b.cfg.Partitions {
			want++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[p] = map[string]int64{}
			c, err := st.OrderedConsumer(ctx, js.OrderedConsumerConfig{FilterSubjects: []string{jetstream.Subject(name, p)}})
			if err != nil {
				errs[p] = err
				return
			}
			it, err := c.Messages(js.PullMaxMessages(500))
			if err != nil {
				errs[p] = err
				return
			}
			defer it.Stop()
			for got := 0; got < want; got++ {
				m, err := it.Next()
				if err != nil {
					errs[p] = err
					return
				}
				countWords(m.Data(), counts[p])
				if pace != nil {
					if md, err := m.Metadata(); err == nil {
						pace.upTo(p, md.Sequence.Stream, time.Now())
					}
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	total := map[string]int64{}
	for _, c := range counts {
		for k, v := range c {
			total[k] += v
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	return d, total, nil
}

func (b *bench) transportLatency(ctx context.Context) ([]time.Duration, error) {
	pace := newPaced()
	name := "bench-lat-plain"
	if err := jetstream.CreateStream(ctx, b.j, name, jetstream.Options{}); err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- b.publish(ctx, name, false, pace) }()
	if _, _, err := b.transport(ctx, name, min(len(b.bodies), b.cfg.LatencyRecords), pace); err != nil {
		return nil, err
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return pace.latencies(), nil
}

// pipelineRun is what one pipeline run measured and produced.
type pipelineRun struct {
	d           time.Duration
	cpu         usage.Times
	checkpoints int64
	counts      map[string]int64 // the results, read after the measurement (not in paced runs)
}

// pipeline runs the WordCount pipeline on the given number of workers
// over the sealed records until every result partition has its end
// record (with pace, until the paced records are committed), then drops
// the streams the run made. Its pipelineRun holds the time and CPU time
// spent until then, the checkpoints and the counts summed over the
// windows. With profile, a CPU profile of the measured run goes to that
// file.
func (b *bench) pipeline(ctx context.Context, name, source string, workers, records int, pace *paced, profile string) (run pipelineRun, err error) {
	p := stream.NewPipeline(name)
	lines := p.Read(stream.Source{Stream: source, Partitions: b.cfg.Partitions, Format: stream.FormatText})
	words := stream.Tokenize(lines, "line", "word")
	win := stream.WindowInto(stream.KeyBy(words, "word"), stream.TumblingWindows(time.Minute), 0)
	stream.Write(stream.GroupByKey(win, stream.Agg{Name: "count", Op: stream.Count}),
		stream.Sink{Stream: name + "-out", DeadLetter: name + "-dead"})
	plan, err := p.Compile()
	if err != nil {
		return run, err
	}
	before, err := b.streams(ctx)
	if err != nil {
		return run, err
	}
	sinkParts := plan.SinkPartitions()
	// The run is over when every result partition ends with its end
	// record. The last record of each partition is looked at after each
	// commit (what a commit did not write cannot have ended it); the
	// results themselves are read after the measurement. A consumer
	// reading them during the run would put its own work — a copy of
	// every result, through the same broker — into the pipeline's time,
	// which the transport's time does not have either.
	committed := make(chan struct{}, 1)
	wctx, cancel := context.WithCancel(ctx)
	var ckpts atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	var conns []*nats.Conn
	// However the run ends, its workers stop before their connections
	// close and the run's streams and buckets go, and those go even when
	// it failed: the next run starts with the broker holding the inputs
	// only.
	defer func() {
		cancel()
		wg.Wait()
		for _, nc := range conns {
			nc.Close()
		}
		if derr := b.dropNew(ctx, before); err == nil {
			err = derr
		}
	}()
	stopProfile := func() {}
	if profile != "" && pace == nil {
		stop, err := usage.StartCPUProfile(profile)
		if err != nil {
			return run, err
		}
		stopProfile = stop
	}
	defer func() { stopProfile() }()
	start, cpu0 := time.Now(), usage.CPUTimes()
	for i := 0; i < workers; i++ {
		nc, err := b.e.Connect()
		if err != nil {
			return run, err
		}
		conns = append(conns, nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = stream.Run(wctx, stream.Config{Plan: plan, Log: jetstream.New(nc, jetstream.Options{}), Worker: "w" + strconv.Itoa(i),
				Keys: stream.Keys{Source: b.src, Sink: b.sink, State: b.state}, CheckpointInterval: b.cfg.Checkpoint, Logf: b.cfg.Logf,
				OnCommit: func(ci stream.CommitInfo) {
					ckpts.Add(1)
					if pace == nil {
						select {
						case committed <- struct{}{}:
						default:
						}
						return
					}
					for k, t := range ci.Tasks {
						if t.Stream == source {
							seq, _ := strconv.ParseUint(ci.Positions[k], 10, 64)
							pace.upTo(t.Partition, seq, ci.Time)
						}
					}
				}})
		}()
	}
	if pace == nil {
		if err := b.awaitEnds(wctx, plan.Sink.Stream, sinkParts, committed); err != nil {
			cancel()
			wg.Wait()
			return run, errors.Join(err, errors.Join(errs...))
		}
		run.d, run.cpu = time.Since(start), usage.CPUTimes().Sub(cpu0)
		stopProfile()
		stopProfile = func() {}
	} else {
		deadline := time.Now().Add(time.Minute)
		for len(pace.latencies()) < records && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return run, err
	}
	run.checkpoints = ckpts.Load()
	if pace != nil {
		return run, nil
	}
	run.counts, err = b.results(ctx, plan)
	return run, err
}

// results reads and opens a pipeline's results and adds up the counts.
func (b *bench) results(ctx context.Context, plan *stream.Plan) (map[string]int64, error) {
	var results [][]byte
	for p := range plan.SinkPartitions() {
		rs, err := jetstream.Read(ctx, b.j, plan.Sink.Stream, p)
		if err != nil {
			return nil, fmt.Errorf("read the results: %w", err)
		}
		results = append(results, rs...)
	}
	counts := map[string]int64{}
	o := record.NewOpener(b.sink)
	for _, r := range results {
		h, err := record.Parse(r)
		if err != nil {
			return nil, err
		}
		if h.Kind == record.KindEnd {
			continue
		}
		rec, err := o.Open(plan.Sink.Stream, h.Partition, r)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(strings.TrimSpace(string(rec.Body)), "\n") {
			var v struct {
				Word  string
				Count int64
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				return nil, err
			}
			counts[v.Word] += v.Count
		}
	}
	return counts, nil
}

// awaitEnds returns once the last record of every partition of the
// result stream is an end record, looking after each signal on committed.
func (b *bench) awaitEnds(ctx context.Context, name string, parts int, committed <-chan struct{}) error {
	ended := make([]bool, parts)
	left := parts
	for left > 0 {
		select {
		case <-committed:
		case <-ctx.Done():
			return ctx.Err()
		}
		st, err := b.j.Stream(ctx, jetstream.StreamName(name))
		if err != nil {
			return err
		}
		for p := range parts {
			if ended[p] {
				continue
			}
			m, err := st.GetLastMsgForSubject(ctx, jetstream.Subject(name, p))
			if errors.Is(err, js.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if h, err := record.Parse(m.Data); err == nil && h.Kind == record.KindEnd {
				ended[p] = true
				left--
			}
		}
	}
	return nil
}

// streams lists the broker's streams, key-value buckets included.
func (b *bench) streams(ctx context.Context) (map[string]bool, error) {
	names := map[string]bool{}
	l := b.j.StreamNames(ctx)
	for n := range l.Name() {
		names[n] = true
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list the streams: %w", err)
	}
	return names, nil
}

// dropNew deletes the streams not in before: what a pipeline run made
// (its shuffle, results, dead letters, leases and state). Every run then
// starts with the broker holding the inputs only, as a pipeline starting
// for real would, and the pages of the run's files are free for the
// next run to write into. Kept, 37 MB of them per run piled up, and
// each run wrote into pages it had never touched — after the machine
// idled, pages the hypervisor had taken back, slow to touch again: up to
// a second of system time in a 0.5 s run.
func (b *bench) dropNew(ctx context.Context, before map[string]bool) error {
	now, err := b.streams(ctx)
	if err != nil {
		return err
	}
	for n := range now {
		if !before[n] {
			if err := b.j.DeleteStream(ctx, n); err != nil {
				return fmt.Errorf("delete stream %s: %w", n, err)
			}
		}
	}
	return nil
}

func (b *bench) pipelineLatency(ctx context.Context, run, workers int) ([]time.Duration, error) {
	pace := newPaced()
	name := fmt.Sprintf("bench-lat-%d-%dw", run, workers)
	src := name + "-text"
	if err := jetstream.CreateStream(ctx, b.j, src, jetstream.Options{}); err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- b.publish(ctx, src, true, pace) }()
	if _, err := b.pipeline(ctx, name, src, workers, min(len(b.bodies), b.cfg.LatencyRecords), pace, ""); err != nil {
		return nil, err
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return pace.latencies(), nil
}

func sameCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func pct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(q * float64(len(ds)-1))
	return float64(ds[i].Microseconds()) / 1000
}
