package stream

import (
	"fmt"
	"time"

	"github.com/ppml/ppml/stream/record"
)

// Pipeline is a Beam-shaped description of a streaming job: a linear chain
// of transforms from one Read to one Write, with at most one GroupByKey.
// Build it with the functions of this file and Compile it into a Plan.
type Pipeline struct {
	name string
	ts   []transform
	errs []error
}

// PCollection is the output of a transform (Beam's PCollection): the input
// of the next one.
type PCollection struct {
	p *Pipeline
	i int // index of the transform that produced it
}

type transformKind int

const (
	tRead transformKind = iota
	tTimestamps
	tParDo
	tFilter
	tTokenize
	tSelect
	tKeyBy
	tWindow
	tGroup
	tWrite
)

type transform struct {
	kind   transformKind
	source Source
	time   EventTime
	fn     DoFn
	fields []string // ParDo: output schema; KeyBy: key fields
	conds  []Cond
	from   string // Tokenize
	as     string
	sel    []Field
	window WindowFn
	late   time.Duration
	aggs   []Agg
	sink   Sink
}

// Source is the stream a pipeline reads.
type Source struct {
	Stream     string
	Partitions int
	Format     Format
	Columns    []string // csv: the columns of each line, in order
}

// Sink is where a pipeline writes its results (JSON lines). It has one
// partition per task of the last stage (one per shuffle partition, or per
// source partition without GroupByKey). DeadLetter and Late name the
// streams for records that cannot be processed and for late records; both
// have one partition.
type Sink struct {
	Stream string
	// Partitions is the number of window tasks (and sink partitions) of a
	// pipeline with GroupByKey; 0 means as many as the source has.
	Partitions int
	DeadLetter string
	Late       string
}

// EventTime says where events carry their time and how far out of order
// they arrive (Flink's WatermarkStrategy.forBoundedOutOfOrderness(...)
// .withIdleness(...)).
type EventTime struct {
	// Field holds the event time; "" uses the time the producer stamped on
	// the record.
	Field string
	Unit  TimeUnit
	// MaxOutOfOrderness bounds how late an event may arrive after a later
	// one: the watermark trails the largest event time seen by this much.
	MaxOutOfOrderness time.Duration
	// IdleTimeout marks a source partition idle when no record arrived for
	// this long (processing time), so it does not hold the watermark back;
	// 0 never does.
	IdleTimeout time.Duration
}

// Field names an output field: Name, renamed to As when As is set.
type Field struct{ Name, As string }

// NewPipeline starts a pipeline. Its name names the shuffle stream, the
// consumer group and the state of the job.
func NewPipeline(name string) *Pipeline { return &Pipeline{name: name} }

func (p *Pipeline) add(in *PCollection, t transform) PCollection {
	if in != nil && (in.p != p || in.i != len(p.ts)-1) {
		p.errs = append(p.errs, fmt.Errorf("transform %d does not apply to the output of the transform before it: only linear pipelines are supported", len(p.ts)+1))
	}
	p.ts = append(p.ts, t)
	return PCollection{p: p, i: len(p.ts) - 1}
}

// Read reads the records of a source stream.
func (p *Pipeline) Read(s Source) PCollection { return p.add(nil, transform{kind: tRead, source: s}) }

// WithEventTime sets the event time and watermark strategy; it must follow Read.
func WithEventTime(in PCollection, t EventTime) PCollection {
	return in.p.add(&in, transform{kind: tTimestamps, time: t})
}

// ParDo applies fn to every row; fields is the schema of the rows fn emits
// (nil: the input schema).
func ParDo(in PCollection, fn DoFn, fields ...string) PCollection {
	return in.p.add(&in, transform{kind: tParDo, fn: fn, fields: fields})
}

// Filter keeps the rows for which every condition holds.
func Filter(in PCollection, conds ...Cond) PCollection {
	return in.p.add(&in, transform{kind: tFilter, conds: conds})
}

// Tokenize emits one row per word of field from, with the word in a new
// field as (see tokenizeFn for what a word is).
func Tokenize(in PCollection, from, as string) PCollection {
	return in.p.add(&in, transform{kind: tTokenize, from: from, as: as})
}

// Select keeps (and renames) fields.
func Select(in PCollection, fields ...Field) PCollection {
	return in.p.add(&in, transform{kind: tSelect, sel: fields})
}

// KeyBy keys rows by fields (Flink's keyBy): GroupByKey groups rows with
// equal values of all of them.
func KeyBy(in PCollection, fields ...string) PCollection {
	return in.p.add(&in, transform{kind: tKeyBy, fields: fields})
}

// WindowInto assigns rows to event-time windows; allowedLateness keeps a
// window's state that long after it fired, and re-fires it for late rows.
func WindowInto(in PCollection, w WindowFn, allowedLateness time.Duration) PCollection {
	return in.p.add(&in, transform{kind: tWindow, window: w, late: allowedLateness})
}

// GroupByKey groups rows by key and window and computes aggs for each
// group (Beam's GroupByKey with a CombineFn, lifted into the source tasks).
func GroupByKey(in PCollection, aggs ...Agg) PCollection {
	return in.p.add(&in, transform{kind: tGroup, aggs: aggs})
}

// Write writes the rows to the sink.
func Write(in PCollection, s Sink) { in.p.add(&in, transform{kind: tWrite, sink: s}) }

// Compile checks the pipeline and returns its plan.
func (p *Pipeline) Compile() (*Plan, error) {
	if len(p.errs) > 0 {
		return nil, p.errs[0]
	}
	if err := record.CheckStreamName(p.name); err != nil {
		return nil, fmt.Errorf("pipeline name: %w", err)
	}
	if len(p.ts) < 2 || p.ts[0].kind != tRead || p.ts[len(p.ts)-1].kind != tWrite {
		return nil, fmt.Errorf("a pipeline starts with Read and ends with Write")
	}
	pl := &Plan{Name: p.name, Source: p.ts[0].source, Sink: p.ts[len(p.ts)-1].sink, tokenSrc: -1}
	pl.Time = EventTime{Unit: UnixMillis}
	if err := pl.checkStreams(); err != nil {
		return nil, err
	}
	// Pass 1: the source fields every transform before the first
	// schema-changing one refers to.
	var src []string
	switch pl.Source.Format {
	case FormatText:
		src = []string{"line"}
	case FormatJSON, FormatCSV:
		produced := map[string]bool{}
		add := func(n string) {
			if produced[n] {
				return
			}
			for _, s := range src {
				if s == n {
					return
				}
			}
			src = append(src, n)
		}
	refs:
		for _, t := range p.ts[1:] {
			switch t.kind {
			case tTimestamps:
				if t.time.Field != "" {
					add(t.time.Field)
				}
			case tFilter:
				for _, c := range t.conds {
					add(c.Field)
				}
			case tTokenize:
				add(t.from)
				produced[t.as] = true
			case tKeyBy:
				for _, f := range t.fields {
					add(f)
				}
			case tGroup:
				for _, a := range t.aggs {
					if a.Field != "" {
						add(a.Field)
					}
				}
			case tSelect:
				for _, f := range t.sel {
					add(f.Name)
				}
				break refs
			case tParDo:
				break refs
			}
		}
	default:
		return nil, fmt.Errorf("source format %q: want text, json or csv", pl.Source.Format)
	}
	// Pass 2: steps over field indexes.
	schema := append([]string(nil), src...)
	var numeric = make([]bool, len(src))
	stage := 0        // 0 before KeyBy, 1 keyed, 2 windowed, 3 grouped
	srcSchema := true // fields still sit where the decoder puts them
	for i, t := range p.ts[1 : len(p.ts)-1] {
		where := fmt.Sprintf("transform %d", i+2)
		switch t.kind {
		case tRead, tWrite:
			return nil, fmt.Errorf("%s: Read and Write may only begin and end a pipeline", where)
		case tTimestamps:
			if i != 0 {
				return nil, fmt.Errorf("%s: WithEventTime must follow Read", where)
			}
			pl.Time = t.time
			if pl.Time.Unit == "" {
				pl.Time.Unit = UnixMillis
			}
			if pl.Time.MaxOutOfOrderness < 0 || pl.Time.IdleTimeout < 0 {
				return nil, fmt.Errorf("%s: durations must not be negative", where)
			}
			if t.time.Field != "" {
				idx, err := fieldIndex(schema, t.time.Field)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				pl.timeIdx = idx
			}
		case tParDo, tFilter, tTokenize, tSelect:
			if stage != 0 && stage != 3 {
				return nil, fmt.Errorf("%s: row steps come before KeyBy or after GroupByKey", where)
			}
			if stage == 3 {
				return nil, fmt.Errorf("%s: steps after GroupByKey are not supported; select output fields with the aggregation names", where)
			}
			f, next, err := buildStep(t, schema)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			pl.tokenSrc = -1
			if t.kind == tTokenize {
				pl.tokenSrc, _ = fieldIndex(schema, t.from) // buildStep found it
			}
			pl.steps = append(pl.steps, f)
			pl.userSteps = pl.userSteps || t.kind == tParDo
			schema = next
			if t.kind == tSelect || t.kind == tParDo {
				srcSchema = false
			}
		case tKeyBy:
			if stage != 0 {
				return nil, fmt.Errorf("%s: KeyBy appears twice or after WindowInto", where)
			}
			if len(t.fields) == 0 {
				return nil, fmt.Errorf("%s: KeyBy needs at least one field", where)
			}
			for _, f := range t.fields {
				idx, err := fieldIndex(schema, f)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				pl.keyIdx = append(pl.keyIdx, idx)
				pl.KeyFields = append(pl.KeyFields, f)
			}
			stage = 1
		case tWindow:
			if stage != 1 {
				return nil, fmt.Errorf("%s: WindowInto must follow KeyBy", where)
			}
			if err := t.window.check(); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if t.late < 0 || t.late%time.Millisecond != 0 {
				return nil, fmt.Errorf("%s: allowed lateness must be whole milliseconds, not negative", where)
			}
			w := t.window
			pl.Window = &w
			pl.Lateness = t.late
			stage = 2
		case tGroup:
			if stage != 2 {
				return nil, fmt.Errorf("%s: GroupByKey must follow WindowInto", where)
			}
			if len(t.aggs) == 0 {
				return nil, fmt.Errorf("%s: GroupByKey needs at least one aggregation", where)
			}
			if err := checkAggs(t.aggs); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			pl.Aggs = t.aggs
			for _, a := range t.aggs {
				idx := -1
				if a.Field != "" {
					var err error
					if idx, err = fieldIndex(schema, a.Field); err != nil {
						return nil, fmt.Errorf("%s: aggregation %s: %w", where, a.Name, err)
					}
					if a.numeric() && srcSchema && idx < len(numeric) {
						numeric[idx] = true
					}
				}
				pl.aggIdx = append(pl.aggIdx, idx)
			}
			for _, k := range pl.KeyFields {
				for _, a := range t.aggs {
					if a.Name == k || a.Name == "window_start" || a.Name == "window_end" || a.Name == "pane" {
						return nil, fmt.Errorf("%s: aggregation name %q is also a key or window field", where, a.Name)
					}
				}
			}
			stage = 3
		}
	}
	if stage == 1 || stage == 2 {
		return nil, fmt.Errorf("KeyBy and WindowInto must be followed by GroupByKey")
	}
	pl.schema = schema
	pl.names()
	if pl.Time.Unit == "" {
		pl.Time.Unit = UnixMillis
	}
	if pl.Time.Field == "" {
		pl.timeIdx = -1
	}
	pl.dec = decoder{format: pl.Source.Format, fields: src, numeric: numeric, timeIdx: pl.timeIdx, timeUnit: pl.Time.Unit, columns: pl.Source.Columns}
	if pl.Source.Format == FormatCSV {
		if len(pl.Source.Columns) == 0 {
			return nil, fmt.Errorf("a csv source needs its columns")
		}
		for _, f := range src {
			c, err := fieldIndex(pl.Source.Columns, f)
			if err != nil {
				return nil, fmt.Errorf("csv source: %w", err)
			}
			pl.dec.colIdx = append(pl.dec.colIdx, c)
		}
	}
	if pl.Window == nil && pl.Time.IdleTimeout != 0 {
		// Idleness only matters to windows.
		pl.Time.IdleTimeout = 0
	}
	return pl, nil
}

func buildStep(t transform, schema []string) (func() DoFn, []string, error) {
	switch t.kind {
	case tParDo:
		if t.fn == nil {
			return nil, nil, fmt.Errorf("ParDo without a function")
		}
		next := schema
		if t.fields != nil {
			next = t.fields
		}
		fn := t.fn
		return func() DoFn { return fn }, next, nil
	case tFilter:
		idx := make([]int, len(t.conds))
		for i, c := range t.conds {
			var err error
			if idx[i], err = fieldIndex(schema, c.Field); err != nil {
				return nil, nil, err
			}
			switch c.Op {
			case Eq, Ne, Lt, Le, Gt, Ge, In:
			default:
				return nil, nil, fmt.Errorf("filter on %s: unknown operator %q (want eq, ne, lt, le, gt, ge or in)", c.Field, c.Op)
			}
		}
		conds := t.conds
		return func() DoFn { return filterFn(conds, idx) }, schema, nil
	case tTokenize:
		idx, err := fieldIndex(schema, t.from)
		if err != nil {
			return nil, nil, err
		}
		if t.as == "" {
			return nil, nil, fmt.Errorf("tokenize %s: name the word field", t.from)
		}
		if _, err := fieldIndex(schema, t.as); err == nil {
			return nil, nil, fmt.Errorf("tokenize %s: field %q exists already", t.from, t.as)
		}
		return func() DoFn { return tokenizeFn(idx) }, append(append([]string(nil), schema...), t.as), nil
	case tSelect:
		if len(t.sel) == 0 {
			return nil, nil, fmt.Errorf("select needs at least one field")
		}
		idx := make([]int, len(t.sel))
		var next []string
		for i, f := range t.sel {
			var err error
			if idx[i], err = fieldIndex(schema, f.Name); err != nil {
				return nil, nil, err
			}
			n := f.Name
			if f.As != "" {
				n = f.As
			}
			for _, m := range next {
				if m == n {
					return nil, nil, fmt.Errorf("select names field %q twice", n)
				}
			}
			next = append(next, n)
		}
		return func() DoFn { return selectFn(idx) }, next, nil
	}
	return nil, nil, fmt.Errorf("not a row step")
}
