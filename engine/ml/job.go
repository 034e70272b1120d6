package mlengine

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/engine/sql/sqldb"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/memfd"
)

// The ml engine under the trusted launcher: the decrypted input memfds and
// the output memfds go to Run, and a train job's query to the SQL engine over
// the same memfds.

func init() { launcher.Register(engine{}) }

// engine is the ml engine's launcher.Engine.
type engine struct{}

func (engine) Spec() job.Spec { return mlspec.Spec }

func (engine) Run(ctx context.Context, j *launcher.Job) error {
	spec, ok := j.Manifest.Parameters.(*mlspec.Params)
	if !ok {
		return fmt.Errorf("ml engine: parameters are %T", j.Manifest.Parameters)
	}
	inputs := make(map[string]Input, len(j.Inputs))
	for _, in := range j.Inputs {
		mi, err := inputOf(in, spec)
		if err != nil {
			return err
		}
		inputs[in.Name] = mi
	}
	outputs := make(map[string]Output, len(j.Outputs))
	for _, o := range j.Outputs {
		mo, ok := j.Manifest.Output(o.Name)
		if !ok {
			return fmt.Errorf("ml engine: output %s is not in the manifest", o.Name)
		}
		outputs[o.Name] = Output{W: o.File.OSFile(), Format: mlspec.PredictionsFormat(mo)}
	}
	sh := &shaper{job: j}
	defer sh.close()
	cfg := Config{
		// mlspec.DefaultThreads (1) when the manifest omits threads: the
		// spec supplies it to job.Parse, so it is also in the digest.
		Threads:   j.Manifest.Resources.Threads,
		JobDigest: j.Manifest.DigestString(),
		SQL:       sh,
	}
	if spec.Distributed() {
		return runWorker(ctx, j, cfg, spec, inputs, outputs)
	}
	j.Logf("ml engine: %s job, %d input(s), %d output(s)", spec.Task, len(inputs), len(outputs))
	res, err := Run(ctx, cfg, spec, inputs, outputs)
	if err != nil {
		return err
	}
	j.Logf("ml engine: %s done on %d rows", res.Task, res.Rows)
	return nil
}

// inputOf maps one decrypted launcher input to an engine input by its memfd
// path. Tables take their format from the envelope's content type; a model
// input has none. With a query the SQL engine reads the inputs instead, so
// their formats are its business. The training table of a train job without
// a query may be a directory: a table split into files (a worker of a
// distributed job is given its block of them).
func inputOf(in launcher.Input, spec *mlspec.Params) (Input, error) {
	query := spec.Query != ""
	split := spec.Task == mlspec.Train && !query
	if !split && (in.IsDir || len(in.Files) != 1) {
		return Input{}, fmt.Errorf("ml engine: input %s: want one file, found a directory of %d", in.Name, len(in.Files))
	}
	if len(in.Files) == 0 {
		return Input{}, fmt.Errorf("ml engine: input %s: an empty directory", in.Name)
	}
	var parts []Input
	for _, f := range in.Files {
		if in.Raw || f.Mem == nil {
			return Input{}, fmt.Errorf("ml engine: input %s: not a decrypted envelope", in.Name)
		}
		mi := Input{Path: f.Mem.Path(), Name: filepath.Base(f.Path)}
		if in.Name != mlspec.InputModel && !query {
			ft, err := mlspec.ParseFormat(f.ContentType.String())
			if err != nil {
				return Input{}, fmt.Errorf("ml engine: input %s (%s): content type %s is not a table (encrypt it with --type csv or parquet)",
					in.Name, filepath.Base(f.Path), f.ContentType)
			}
			mi.Format = ft
		}
		parts = append(parts, mi)
	}
	if !in.IsDir {
		parts[0].Name = ""
		return parts[0], nil
	}
	return Input{Name: in.Name, Parts: parts}, nil
}

// shaper runs a train job's query on the SQL engine, with the job's inputs
// as tables named after them (the same memfds the ml engine would read) and
// the job's memory and thread limits. The result goes to a memfd as CSV:
// every SQL numeric type prints as a number the table reader parses, where
// Parquet would bring DECIMAL and other types it does not read.
type shaper struct {
	job  *launcher.Job
	mems []*memfd.File
}

func (s *shaper) Shape(ctx context.Context, query string, _ map[string]Input) (Input, error) {
	var tables []sqldb.Input
	for _, in := range s.job.Inputs {
		t := sqldb.Input{Name: in.Name}
		for _, f := range in.Files {
			if f.Mem == nil {
				return Input{}, fmt.Errorf("input %s: not a decrypted envelope", in.Name)
			}
			if t.Format == "" {
				ft, err := sqldb.FormatForContentType(f.ContentType)
				if err != nil {
					return Input{}, fmt.Errorf("input %s: %s: %w", in.Name, filepath.Base(f.Path), err)
				}
				t.Format = ft
			}
			t.Files = append(t.Files, sqldb.File{Path: f.Mem.Path(), Name: filepath.Base(f.Path)})
		}
		tables = append(tables, t)
	}
	r := s.job.Manifest.Resources
	e, err := sqldb.Open(ctx, sqldb.Config{MemoryLimit: r.Memory, Threads: r.Threads, Inputs: tables, OutputSlots: 1})
	if err != nil {
		return Input{}, err
	}
	defer e.Close()
	m, err := memfd.New("ml-training-table")
	if err != nil {
		return Input{}, fmt.Errorf("training table buffer: %w", err)
	}
	s.mems = append(s.mems, m)
	if err := e.Write(ctx, query, sqldb.CSV, m.OSFile()); err != nil {
		return Input{}, err
	}
	if err := m.Seal(); err != nil {
		return Input{}, fmt.Errorf("training table buffer: %w", err)
	}
	s.job.Logf("ml engine: query shaped the training table")
	return Input{Path: m.Path(), Format: mlspec.CSV}, nil
}

func (s *shaper) close() {
	for _, m := range s.mems {
		m.Close()
	}
	s.mems = nil
}
