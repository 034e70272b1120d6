// Package stream runs the stream engine (package ppml/stream) under the
// trusted launcher: it registers with launcher.Register, turns the key files
// the launcher released into keys, and runs either bounded mode — the
// records of the job's input files replayed as a batch, results written to
// the job's outputs — or a worker on a Kafka, NATS JetStream or Redis log
// until the launcher stops it. The engine is launcher.LongRunning: a stop is
// the normal end of a worker, which then drains (commits what it did and
// leaves its group, so its tasks move to the other workers). A stopped
// bounded run is abandoned like any batch job. Parameters: package
// streamspec.
package stream

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/engine/stream/streamspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	pstream "github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/jetstream"
	"github.com/ppml/ppml/stream/kafka"
	"github.com/ppml/ppml/stream/memlog"
	"github.com/ppml/ppml/stream/record"
	"github.com/ppml/ppml/stream/redisstream"
)

func init() { launcher.Register(engine{}) }

// engine is the stream engine's launcher.Engine.
type engine struct{}

func (engine) Spec() job.Spec { return streamspec.Spec }

// LongRunning implements launcher.LongRunning: a worker on a log runs until
// it is stopped, then drains within the launcher's grace period.
func (engine) LongRunning() {}

func (engine) Run(ctx context.Context, j *launcher.Job) error {
	p, ok := j.Manifest.Parameters.(*streamspec.Params)
	if !ok {
		return fmt.Errorf("stream engine: parameters are %T", j.Manifest.Parameters)
	}
	plan, err := p.Plan()
	if err != nil {
		return fmt.Errorf("stream engine: %w", err)
	}
	keys, err := loadKeys(p, j.Secrets)
	if err != nil {
		return err
	}
	if p.Log.Kind == streamspec.LogFiles {
		return runBounded(ctx, j, p, plan, keys)
	}
	log, closeLog, err := openLog(p, j.Logf)
	if err != nil {
		return err
	}
	defer closeLog()
	worker := p.Log.Worker
	if worker == "" {
		h, _ := os.Hostname()
		worker = h
	}
	j.Logf("stream engine: worker %s on a %s log, pipeline %s (%s to %s)", worker, p.Log.Kind, plan.Name, plan.Source.Stream, plan.Sink.Stream)
	st, err := pstream.Run(ctx, pstream.Config{Plan: plan, Log: log, Worker: worker, Keys: keys,
		CheckpointInterval: p.CheckpointInterval, Logf: j.Logf})
	j.Logf("stream engine: stopped after %d records, %d results, %d dead letters, %d late, %d checkpoints",
		st.Records, st.Results, st.DeadLetters, st.Late, st.Checkpoints)
	return err
}

func loadKeys(p *streamspec.Params, secrets map[string][]byte) (pstream.Keys, error) {
	load := func(what, file string) (*envelope.LocalKey, error) {
		if file == "" {
			return nil, nil
		}
		b, ok := secrets[p.KeyPath(file)]
		if !ok {
			return nil, fmt.Errorf("stream engine: keys.%s: key file %s was not released", what, file)
		}
		k, err := keyfile.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("stream engine: keys.%s (%s): %w", what, file, err)
		}
		return k, nil
	}
	src, err := load("source", p.Keys.Source)
	if err != nil {
		return pstream.Keys{}, err
	}
	sink, err := load("sink", p.Keys.Sink)
	if err != nil {
		return pstream.Keys{}, err
	}
	state, err := load("state", p.Keys.State)
	if err != nil {
		return pstream.Keys{}, err
	}
	// Bounded mode keeps the shuffle, the state and the results in memory:
	// keys that never leave this process do.
	if sink == nil {
		if sink, err = ephemeralKey(); err != nil {
			return pstream.Keys{}, err
		}
	}
	if state == nil {
		if state, err = ephemeralKey(); err != nil {
			return pstream.Keys{}, err
		}
	}
	return pstream.Keys{Source: src, Sink: sink, State: state}, nil
}

func ephemeralKey() (*envelope.LocalKey, error) {
	b := make([]byte, envelope.LocalKeySize)
	defer clear(b)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return envelope.NewLocalKey(b)
}

func openLog(p *streamspec.Params, logf func(string, ...any)) (pstream.Log, func(), error) {
	switch p.Log.Kind {
	case streamspec.LogJetStream:
		var nc *nats.Conn
		var err error
		closeAll := func() {}
		if p.Log.Embedded {
			e, err := jetstream.StartEmbedded(p.Log.StoreDir, false)
			if err != nil {
				return nil, nil, err
			}
			if nc, err = e.Connect(); err != nil {
				e.Shutdown()
				return nil, nil, err
			}
			closeAll = func() { nc.Close(); e.Shutdown() }
		} else {
			// The client reconnects by itself and buffers meanwhile, so the
			// worker may not notice a short outage: say so here.
			if nc, err = nats.Connect(p.Log.URL, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
				nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
					// The URL may hold credentials: only the redacted form is logged.
					logf("stream engine: lost the NATS server %s: %v; reconnecting", c.ConnectedUrlRedacted(), err)
				}),
				nats.ReconnectHandler(func(c *nats.Conn) {
					logf("stream engine: reconnected to the NATS server %s", c.ConnectedUrlRedacted())
				})); err != nil {
				return nil, nil, fmt.Errorf("stream engine: connect to %s: %w", p.Log.URL, err)
			}
			closeAll = nc.Close
		}
		return jetstream.New(nc, jetstream.Options{}), closeAll, nil
	case streamspec.LogKafka:
		return kafka.New(kafka.Options{Brokers: strings.Split(p.Log.URL, ",")}), func() {}, nil
	case streamspec.LogRedis:
		o, err := redis.ParseURL(p.Log.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("stream engine: log url: %w", err)
		}
		rdb := redis.NewClient(o)
		return redisstream.New(rdb, redisstream.Options{}), func() { rdb.Close() }, nil
	}
	return nil, nil, fmt.Errorf("stream engine: unknown log kind %q", p.Log.Kind)
}

// runBounded replays the record files of the source input as a batch: the
// input ends where the files end, every window fires, and the results,
// late records and dead letters become the job's outputs as JSON lines
// (sorted, so a run's outputs do not depend on timing).
func runBounded(ctx context.Context, j *launcher.Job, p *streamspec.Params, plan *pstream.Plan, keys pstream.Keys) error {
	l := memlog.New(true)
	l.Create(plan.Source.Stream, plan.Source.Partitions)
	n := 0
	for _, in := range j.Inputs {
		if in.Name != p.Source.Input {
			continue
		}
		for _, f := range in.Files {
			c, err := loadRecordFile(l, plan, f.Path)
			if err != nil {
				return err
			}
			n += c
		}
	}
	j.Logf("stream engine: bounded run of %d records over %d partitions", n, plan.Source.Partitions)
	st, err := pstream.Run(ctx, pstream.Config{Plan: plan, Log: l, Worker: "bounded", Keys: keys,
		CheckpointInterval: p.CheckpointInterval, StopWhenEnded: true, Logf: func(string, ...any) {}})
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	j.Logf("stream engine: %d events, %d results, %d dead letters, %d late", st.Events, st.Results, st.DeadLetters, st.Late)
	streams := map[string]string{streamspec.OutResults: plan.Sink.Stream, streamspec.OutLate: plan.Sink.Late, streamspec.OutDeadLetters: plan.Sink.DeadLetter}
	for _, o := range j.Outputs {
		lines, err := collect(l, streams[o.Name], keys.Sink.(*envelope.LocalKey))
		if err != nil {
			return err
		}
		if _, err := o.File.OSFile().WriteString(strings.Join(lines, "")); err != nil {
			return fmt.Errorf("stream engine: output %s: %w", o.Name, err)
		}
	}
	return nil
}

// loadRecordFile appends a file's records to the partitions their headers
// name; a record whose header does not parse, or names a partition the
// source does not have, goes to partition 0, where opening it fails and it
// is dead-lettered: nothing is dropped.
func loadRecordFile(l *memlog.Log, plan *pstream.Plan, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("stream engine: %w", err)
	}
	defer f.Close()
	r := record.NewFileReader(f)
	n := 0
	for {
		b, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("stream engine: %s: %w", path, err)
		}
		part := 0
		if h, err := record.Parse(b); err == nil && int(h.Partition) < plan.Source.Partitions {
			part = int(h.Partition)
		}
		if err := l.Append(plan.Source.Stream, part, b); err != nil {
			return n, err
		}
		n++
	}
}

func collect(l *memlog.Log, name string, key envelope.KeyResolver) ([]string, error) {
	o := record.NewOpener(key)
	var lines []string
	for p := 0; p < l.Partitions(name); p++ {
		for _, b := range l.Read(name, p) {
			r, err := o.Open(name, uint32(p), b)
			if err != nil {
				return nil, fmt.Errorf("stream engine: reading back %s: %w", name, err)
			}
			if r.Kind != record.KindData {
				continue
			}
			for _, ln := range strings.SplitAfter(string(r.Body), "\n") {
				if ln != "" {
					lines = append(lines, ln)
				}
			}
		}
	}
	sort.Strings(lines)
	return lines, nil
}
