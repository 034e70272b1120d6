// Package streamspec is the stream engine's manifest parameters: it
// parses, validates and canonicalizes them (pure Go: the key service links
// it to compute job digests) and builds the engine's stream.Plan. Spec is listed in engine/specs.All; the
// runtime side is package engine/stream. docs/stream.md describes every
// field.
package streamspec

import (
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/record"
)

// Name is the manifest's engine value.
const Name = "stream"

// Log kinds.
const (
	LogFiles     = "files" // bounded mode: record files of the job's inputs
	LogJetStream = "jetstream"
	LogKafka     = "kafka"
	LogRedis     = "redis"
)

// Bounded-mode outputs, by manifest output name.
const (
	OutResults     = "results"
	OutLate        = "late"
	OutDeadLetters = "dead_letters"
)

// Params are the stream engine's parameters.
type Params struct {
	Log    Log
	Source Source
	Time   stream.EventTime
	Filter []stream.Cond
	// Tokenize splits Tokenize[0] into words in a new field Tokenize[1].
	Tokenize []string
	Select   []stream.Field
	KeyBy    []string
	Window   *stream.WindowFn
	Lateness time.Duration
	Aggs     []stream.Agg
	Sink     Sink
	// CheckpointInterval is how often workers commit. Default 2s.
	CheckpointInterval time.Duration
	Keys               Keys

	dir  string
	node job.Node
}

// Log says where the streams are. Only Kind is part of the job's identity:
// addresses and worker names are deployment, like input paths.
type Log struct {
	Kind string
	// URL: nats://host:port (JetStream), host:port[,host:port...] (Kafka),
	// redis://host:port (Redis).
	URL string
	// Embedded runs nats-server inside the worker, storing under StoreDir
	// (JetStream only).
	Embedded bool
	StoreDir string
	// Worker names this worker: stable across its restarts (Kafka's
	// transactional id, leases).
	Worker string
}

// Source is the stream the pipeline reads.
type Source struct {
	Stream     string
	Partitions int
	Format     stream.Format
	Columns    []string
	// Input is the manifest input holding the record files (bounded mode).
	Input string
}

// Sink is where results go: streams (on a log), or the manifest outputs
// results, late and dead_letters (bounded mode).
type Sink struct {
	Stream     string
	Partitions int
	DeadLetter string
	Late       string
}

// Keys are envelope files (decrypted after attestation, like inputs) each
// holding a ppml local key file: Source opens source records; Sink seals
// results, late records and dead letters; State seals the shuffle and the
// snapshots. In bounded mode only Source is needed.
type Keys struct {
	Source, Sink, State string
}

// Spec is the stream engine's job.Spec.
var Spec job.Spec = spec{}

type spec struct{}

func (spec) Name() string { return Name }

// ParseParameters implements job.Spec.
func (spec) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required for engine stream (at least source and sink)")
		return nil
	}
	fs, ok := n.CheckedFields(c, "log", "source", "event_time", "filter", "tokenize", "select", "key_by", "window",
		"allowed_lateness", "aggregate", "sink", "checkpoint_interval", "keys")
	if !ok {
		return nil
	}
	p := &Params{node: n, CheckpointInterval: 2 * time.Second}
	p.Log.Kind = LogFiles
	if ln, ok := fs["log"]; ok {
		p.parseLog(ln, c)
	}
	if sn, ok := fs["source"]; ok {
		p.parseSource(sn, c)
	} else {
		c.Failf(n.Missing("source"), "required: the stream the job reads")
	}
	if tn, ok := fs["event_time"]; ok {
		p.parseTime(tn, c)
	}
	if fn, ok := fs["filter"]; ok {
		p.parseFilter(fn, c)
	}
	if tn, ok := fs["tokenize"]; ok {
		tfs, ok := tn.CheckedFields(c, "field", "as")
		if ok {
			p.Tokenize = []string{requiredStr(tn, tfs, "field", c), requiredStr(tn, tfs, "as", c)}
		}
	}
	if sn, ok := fs["select"]; ok {
		p.parseSelect(sn, c)
	}
	if kn, ok := fs["key_by"]; ok {
		ks, _, err := kn.StrList()
		c.Add(err)
		p.KeyBy = ks
	}
	if wn, ok := fs["window"]; ok {
		p.parseWindow(wn, c)
	}
	if ln, ok := fs["allowed_lateness"]; ok {
		p.Lateness = duration(ln, c)
	}
	if an, ok := fs["aggregate"]; ok {
		p.parseAggs(an, c)
	}
	if sn, ok := fs["sink"]; ok {
		p.parseSink(sn, c)
	}
	if cn, ok := fs["checkpoint_interval"]; ok {
		p.CheckpointInterval = duration(cn, c)
		if p.CheckpointInterval < 10*time.Millisecond && c.OK() {
			c.Failf(cn, "must be at least 10ms")
		}
	}
	if kn, ok := fs["keys"]; ok {
		kfs, ok := kn.CheckedFields(c, "source", "sink", "state")
		if ok {
			p.Keys = Keys{Source: optStr(kfs, "source", c), Sink: optStr(kfs, "sink", c), State: optStr(kfs, "state", c)}
		}
	}
	if p.Keys.Source == "" {
		c.Failf(n.Missing("keys"), "keys.source is required: the key file that opens the source records")
	}
	if p.Log.Kind != LogFiles && (p.Keys.Sink == "" || p.Keys.State == "") {
		c.Failf(n.Missing("keys"), "keys.sink and keys.state are required on a %s log", p.Log.Kind)
	}
	if (p.Window == nil) != (len(p.Aggs) == 0) || (p.Window == nil) != (len(p.KeyBy) == 0) {
		c.Failf(n, "key_by, window and aggregate go together: give all three (windowed aggregation) or none (filter and select only)")
	}
	if !c.OK() {
		return nil
	}
	if p.Sink.Stream == "" {
		p.Sink.Stream = p.Source.Stream + "-results"
	}
	if p.Sink.DeadLetter == "" && p.Log.Kind != LogFiles {
		p.Sink.DeadLetter = p.Sink.Stream + "-dead" // never only counted
	}
	if _, err := p.Plan(); err != nil {
		c.Failf(n, "%v", err)
		return nil
	}
	return p
}

func (p *Params) parseLog(n job.Node, c *job.Checker) {
	fs, ok := n.CheckedFields(c, "kind", "url", "embedded", "store_dir", "worker")
	if !ok {
		return
	}
	p.Log.Kind = requiredStr(n, fs, "kind", c)
	switch p.Log.Kind {
	case LogFiles, LogJetStream, LogKafka, LogRedis, "":
	default:
		c.Failf(fs["kind"], "log kind %q: want jetstream, kafka, redis or files", p.Log.Kind)
	}
	p.Log.URL = optStr(fs, "url", c)
	if en, ok := fs["embedded"]; ok {
		p.Log.Embedded = boolean(en, c)
		if p.Log.Embedded && p.Log.Kind != LogJetStream {
			c.Failf(en, "only a jetstream log can be embedded")
		}
	}
	p.Log.StoreDir = optStr(fs, "store_dir", c)
	p.Log.Worker = optStr(fs, "worker", c)
	if p.Log.Kind != LogFiles && p.Log.URL == "" && !p.Log.Embedded {
		c.Failf(n, "a %s log needs url (or, for jetstream, embedded: true)", p.Log.Kind)
	}
	if p.Log.Embedded && p.Log.StoreDir == "" {
		c.Failf(n, "an embedded jetstream log needs store_dir")
	}
}

func (p *Params) parseSource(n job.Node, c *job.Checker) {
	fs, ok := n.CheckedFields(c, "stream", "partitions", "format", "columns", "input")
	if !ok {
		return
	}
	p.Source.Stream = requiredStr(n, fs, "stream", c)
	if p.Source.Stream != "" {
		if err := record.CheckStreamName(p.Source.Stream); err != nil {
			c.Failf(fs["stream"], "%v", err)
		}
	}
	p.Source.Partitions = 1
	if pn, ok := fs["partitions"]; ok {
		p.Source.Partitions = count(pn, c, stream.MaxPartitions)
	}
	p.Source.Format = stream.Format(requiredStr(n, fs, "format", c))
	switch p.Source.Format {
	case stream.FormatText, stream.FormatJSON, stream.FormatCSV, "":
	default:
		c.Failf(fs["format"], "format %q: want text, json or csv", p.Source.Format)
	}
	if cn, ok := fs["columns"]; ok {
		cols, _, err := cn.StrList()
		c.Add(err)
		p.Source.Columns = cols
	}
	if (p.Source.Format == stream.FormatCSV) != (len(p.Source.Columns) > 0) && c.OK() {
		c.Failf(n, "columns are required for a csv source, and only for one")
	}
	p.Source.Input = optStr(fs, "input", c)
}

func (p *Params) parseTime(n job.Node, c *job.Checker) {
	fs, ok := n.CheckedFields(c, "field", "unit", "max_out_of_orderness", "idle_timeout")
	if !ok {
		return
	}
	p.Time.Field = optStr(fs, "field", c)
	p.Time.Unit = stream.UnixMillis
	if un, ok := fs["unit"]; ok {
		s, err := un.Str()
		c.Add(err)
		switch u := stream.TimeUnit(s); u {
		case stream.UnixMillis, stream.UnixSeconds, stream.RFC3339:
			p.Time.Unit = u
		default:
			c.Failf(un, "time unit %q: want unix_ms, unix_s or rfc3339", s)
		}
		if p.Time.Field == "" {
			c.Failf(un, "a unit needs a field (without one, events take the time their producer stamped on the record)")
		}
	}
	if dn, ok := fs["max_out_of_orderness"]; ok {
		p.Time.MaxOutOfOrderness = duration(dn, c)
	}
	if dn, ok := fs["idle_timeout"]; ok {
		p.Time.IdleTimeout = duration(dn, c)
	}
}

var ops = []stream.Op{stream.Eq, stream.Ne, stream.Lt, stream.Le, stream.Gt, stream.Ge, stream.In}

func (p *Params) parseFilter(n job.Node, c *job.Checker) {
	items, err := n.Items()
	if err != nil {
		c.Add(err)
		return
	}
	for _, it := range items {
		known := []string{"field"}
		for _, o := range ops {
			known = append(known, string(o))
		}
		fs, ok := it.CheckedFields(c, known...)
		if !ok {
			continue
		}
		cond := stream.Cond{Field: requiredStr(it, fs, "field", c)}
		nops := 0
		for _, o := range ops {
			vn, ok := fs[string(o)]
			if !ok {
				continue
			}
			nops++
			cond.Op = o
			if o == stream.In {
				_, vals, err := vn.StrList()
				c.Add(err)
				for _, v := range vals {
					cond.Values = append(cond.Values, value(v, c))
				}
			} else {
				cond.Value = value(vn, c)
			}
		}
		if nops != 1 {
			c.Failf(it, "a condition has one operator (eq, ne, lt, le, gt, ge or in), found %d", nops)
		}
		p.Filter = append(p.Filter, cond)
	}
}

// value reads a filter constant (see stream.Const: a number that also
// matches its own text in string fields).
func value(n job.Node, c *job.Checker) stream.Value {
	s, err := n.Str()
	if err != nil {
		c.Add(err)
		return stream.Value{}
	}
	return stream.Const(s)
}

func (p *Params) parseSelect(n job.Node, c *job.Checker) {
	items, err := n.Items()
	if err != nil {
		c.Add(err)
		return
	}
	for _, it := range items {
		if it.IsScalar() {
			s, err := it.Str()
			c.Add(err)
			p.Select = append(p.Select, stream.Field{Name: s})
			continue
		}
		fs, ok := it.CheckedFields(c, "field", "as")
		if !ok {
			continue
		}
		p.Select = append(p.Select, stream.Field{Name: requiredStr(it, fs, "field", c), As: optStr(fs, "as", c)})
	}
}

func (p *Params) parseWindow(n job.Node, c *job.Checker) {
	fs, ok := n.CheckedFields(c, "tumbling", "sliding", "every", "session")
	if !ok {
		return
	}
	var w stream.WindowFn
	kinds := 0
	if dn, ok := fs["tumbling"]; ok {
		kinds++
		w = stream.TumblingWindows(duration(dn, c))
	}
	if dn, ok := fs["sliding"]; ok {
		kinds++
		en, ok := fs["every"]
		if !ok {
			c.Failf(n.Missing("every"), "a sliding window needs every: how often a window starts")
			return
		}
		w = stream.SlidingWindows(duration(dn, c), duration(en, c))
	} else if en, ok := fs["every"]; ok {
		c.Failf(en, "every goes with sliding")
	}
	if dn, ok := fs["session"]; ok {
		kinds++
		w = stream.SessionWindows(duration(dn, c))
	}
	if kinds != 1 {
		c.Failf(n, "give one of tumbling, sliding (with every) or session")
		return
	}
	p.Window = &w
}

func (p *Params) parseAggs(n job.Node, c *job.Checker) {
	es, err := n.Entries()
	if err != nil {
		c.Add(err)
		return
	}
	for _, e := range es {
		a := stream.Agg{Name: e.Name}
		if e.Value.IsScalar() {
			s, err := e.Value.Str()
			c.Add(err)
			if s != string(stream.Count) {
				c.Failf(e.Value, "%q needs a field: write {%s: FIELD}", s, s)
				continue
			}
			a.Op = stream.Count
		} else {
			known := []string{"sum", "min", "max", "mean", "distinct_count"}
			fs, ok := e.Value.CheckedFields(c, known...)
			if !ok {
				continue
			}
			if len(fs) != 1 {
				c.Failf(e.Value, "give one of count, sum, min, max, mean or distinct_count")
				continue
			}
			for k, vn := range fs {
				a.Op = stream.AggOp(k)
				a.Field, err = vn.Str()
				c.Add(err)
			}
		}
		p.Aggs = append(p.Aggs, a)
	}
}

func (p *Params) parseSink(n job.Node, c *job.Checker) {
	fs, ok := n.CheckedFields(c, "stream", "partitions", "dead_letter", "late")
	if !ok {
		return
	}
	p.Sink.Stream = optStr(fs, "stream", c)
	if pn, ok := fs["partitions"]; ok {
		p.Sink.Partitions = count(pn, c, stream.MaxPartitions)
	}
	p.Sink.DeadLetter = optStr(fs, "dead_letter", c)
	p.Sink.Late = optStr(fs, "late", c)
}

// Plan builds the pipeline the parameters describe: filter, tokenize,
// select, then key_by, window and aggregate.
func (p *Params) Plan() (*stream.Plan, error) {
	pl := stream.NewPipeline(planName(p))
	in := stream.WithEventTime(pl.Read(stream.Source{Stream: p.Source.Stream, Partitions: p.Source.Partitions,
		Format: p.Source.Format, Columns: p.Source.Columns}), p.Time)
	if len(p.Filter) > 0 {
		in = stream.Filter(in, p.Filter...)
	}
	if len(p.Tokenize) == 2 {
		in = stream.Tokenize(in, p.Tokenize[0], p.Tokenize[1])
	}
	if len(p.Select) > 0 {
		in = stream.Select(in, p.Select...)
	}
	sink := stream.Sink{Stream: p.Sink.Stream, Partitions: p.Sink.Partitions, DeadLetter: p.Sink.DeadLetter, Late: p.Sink.Late}
	if p.Log.Kind == LogFiles {
		// Bounded mode: internal streams; the manifest outputs get the lines.
		sink = stream.Sink{Stream: p.Sink.Stream, Partitions: p.Sink.Partitions, DeadLetter: p.Source.Stream + "-dead", Late: p.Source.Stream + "-late"}
	}
	if p.Window != nil {
		in = stream.GroupByKey(stream.WindowInto(stream.KeyBy(in, p.KeyBy...), *p.Window, p.Lateness), p.Aggs...)
	}
	stream.Write(in, sink)
	return pl.Compile()
}

// planName names the pipeline (its group, shuffle and state): the sink
// stream, which a pipeline writes alone.
func planName(p *Params) string { return p.Sink.Stream }

// CheckManifest implements job.ManifestChecker: bounded mode reads one
// manifest input and writes the outputs results, late and dead_letters;
// a log-backed job has no inputs or outputs.
func (p *Params) CheckManifest(m *job.Manifest, c *job.Checker) {
	p.dir = m.Dir
	if p.Log.Kind != LogFiles {
		if len(m.Inputs) > 0 || len(m.Outputs) > 0 {
			c.Failf(p.node, "a job on a %s log reads and writes streams: remove inputs and outputs", p.Log.Kind)
		}
		return
	}
	if p.Source.Input == "" {
		if len(m.Inputs) != 1 {
			c.Failf(p.node, "bounded mode (no log) reads one manifest input of record files; name it with source.input")
			return
		}
		p.Source.Input = m.Inputs[0].Name
	}
	found := false
	for _, in := range m.Inputs {
		found = found || in.Name == p.Source.Input
	}
	if !found {
		c.Failf(p.node, "source.input %q is not a manifest input", p.Source.Input)
	}
	has := map[string]bool{}
	for _, o := range m.Outputs {
		switch o.Name {
		case OutResults, OutLate, OutDeadLetters:
			has[o.Name] = true
		default:
			c.Failf(p.node, "output %s: a bounded stream job writes the outputs results, late and dead_letters", o.Name)
		}
	}
	if !has[OutResults] {
		c.Failf(p.node, "bounded mode needs an output named results")
	}
}

// RawInputs implements launcher.RawInputs: record files are not envelopes.
func (p *Params) RawInputs() []string {
	if p.Log.Kind == LogFiles && p.Source.Input != "" {
		return []string{p.Source.Input}
	}
	return nil
}

// SecretFiles implements launcher.SecretFiles: the key files, released with
// the job's other keys after attestation.
func (p *Params) SecretFiles() []string {
	var out []string
	for _, k := range []string{p.Keys.Source, p.Keys.Sink, p.Keys.State} {
		if k != "" {
			out = append(out, p.KeyPath(k))
		}
	}
	sort.Strings(out)
	return out
}

// KeyPath resolves a key file against the manifest's directory.
func (p *Params) KeyPath(k string) string {
	if filepath.IsAbs(k) || p.dir == "" {
		return filepath.Clean(k)
	}
	return filepath.Join(p.dir, k)
}

// Canonical implements job.Parameters.
func (p *Params) Canonical() map[string]any {
	strs := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	var filter []any
	for _, f := range p.Filter {
		m := map[string]any{"field": f.Field}
		if f.Op == stream.In {
			var vs []any
			for _, v := range f.Values {
				vs = append(vs, canonValue(v))
			}
			m[string(f.Op)] = vs
		} else {
			m[string(f.Op)] = canonValue(f.Value)
		}
		filter = append(filter, m)
	}
	var sel []any
	for _, f := range p.Select {
		sel = append(sel, map[string]any{"field": f.Name, "as": f.As})
	}
	aggs := map[string]any{}
	for _, a := range p.Aggs {
		aggs[a.Name] = map[string]any{"op": string(a.Op), "field": a.Field}
	}
	out := map[string]any{
		"log":    map[string]any{"kind": p.Log.Kind},
		"source": map[string]any{"stream": p.Source.Stream, "partitions": int64(p.Source.Partitions), "format": string(p.Source.Format), "columns": strs(p.Source.Columns), "input": p.Source.Input},
		"event_time": map[string]any{"field": p.Time.Field, "unit": string(p.Time.Unit),
			"max_out_of_orderness": p.Time.MaxOutOfOrderness.String(), "idle_timeout": p.Time.IdleTimeout.String()},
		"filter":              orEmpty(filter),
		"tokenize":            strs(p.Tokenize),
		"select":              orEmpty(sel),
		"key_by":              strs(p.KeyBy),
		"allowed_lateness":    p.Lateness.String(),
		"aggregate":           aggs,
		"sink":                map[string]any{"stream": p.Sink.Stream, "partitions": int64(p.Sink.Partitions), "dead_letter": p.Sink.DeadLetter, "late": p.Sink.Late},
		"checkpoint_interval": p.CheckpointInterval.String(),
		"keys":                map[string]any{"source": p.Keys.Source, "sink": p.Keys.Sink, "state": p.Keys.State},
	}
	if w := p.Window; w != nil {
		out["window"] = map[string]any{"kind": string(w.Kind), "size": w.Size.String(), "slide": w.Slide.String(), "gap": w.Gap.String()}
	} else {
		out["window"] = map[string]any{}
	}
	return out
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func canonValue(v stream.Value) any {
	return v.S
}

func requiredStr(n job.Node, fs map[string]job.Node, name string, c *job.Checker) string {
	fn, ok := fs[name]
	if !ok {
		c.Failf(n.Missing(name), "required")
		return ""
	}
	s, err := fn.Str()
	c.Add(err)
	return s
}

func optStr(fs map[string]job.Node, name string, c *job.Checker) string {
	fn, ok := fs[name]
	if !ok {
		return ""
	}
	s, err := fn.Str()
	c.Add(err)
	return s
}

func boolean(n job.Node, c *job.Checker) bool {
	s, err := n.Str()
	c.Add(err)
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	if err == nil {
		c.Failf(n, "must be true or false, found %q", s)
	}
	return false
}

func count(n job.Node, c *job.Checker, max int) int {
	v, err := n.Int()
	if err != nil {
		c.Add(err)
		return 0
	}
	if v < 1 || v > int64(max) {
		c.Failf(n, "must be 1 to %d", max)
		return 0
	}
	return int(v)
}

// duration reads a Go duration ("90s", "1m30s", "250ms").
func duration(n job.Node, c *job.Checker) time.Duration {
	s, err := n.Str()
	if err != nil {
		c.Add(err)
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		c.Failf(n, "%q is not a duration such as 90s, 1m30s or 250ms", s)
		return 0
	}
	return d
}
