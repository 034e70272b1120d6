// Package mljob runs the ml engine (package mlengine) under the trusted
// launcher: it registers "ml" with launcher.RegisterEngine, hands the
// decrypted input memfds and the output memfds to mlengine.Run, and gives a
// train job's query to the SQL engine over the same memfds. Import it for
// its side effect (ppml run does, from internal/cli).
package mljob

import (
	"context"
	"fmt"
	"path/filepath"

	mlengine "github.com/ppml/ppml/engine/ml"
	sqlengine "github.com/ppml/ppml/engine/sql"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/memfd"
)

func init() { launcher.RegisterEngine(mlengine.EngineName, launcher.EngineFunc(Run)) }

// Run is the ml engine's launcher.Engine.
func Run(ctx context.Context, j *launcher.Job) error {
	spec, ok := j.Manifest.Parameters.(*mlengine.Spec)
	if !ok {
		return fmt.Errorf("ml engine: parameters are %T", j.Manifest.Parameters)
	}
	inputs := make(map[string]mlengine.Input, len(j.Inputs))
	for _, in := range j.Inputs {
		mi, err := inputOf(in, spec.Query != "")
		if err != nil {
			return err
		}
		inputs[in.Name] = mi
	}
	outputs := make(map[string]mlengine.Output, len(j.Outputs))
	for _, o := range j.Outputs {
		mo, ok := j.Manifest.Output(o.Name)
		if !ok {
			return fmt.Errorf("ml engine: output %s is not in the manifest", o.Name)
		}
		outputs[o.Name] = mlengine.Output{W: o.File.OSFile(), Format: mlengine.PredictionsFormat(mo)}
	}
	sh := &shaper{job: j}
	defer sh.close()
	cfg := mlengine.Config{
		// mlengine.DefaultThreads (1) when the manifest omits threads: the
		// engine supplies it to job.Parse, so it is also in the digest.
		Threads:   j.Manifest.Resources.Threads,
		JobDigest: j.Manifest.DigestString(),
		SQL:       sh,
	}
	j.Logf("ml engine: %s job, %d input(s), %d output(s)", spec.Task, len(inputs), len(outputs))
	res, err := mlengine.Run(ctx, cfg, spec, inputs, outputs)
	if err != nil {
		return err
	}
	j.Logf("ml engine: %s done on %d rows", res.Task, res.Rows)
	return nil
}

// inputOf maps one decrypted launcher input to an engine input by its memfd
// path. Tables take their format from the envelope's content type; a model
// input has none. With a query the SQL engine reads the inputs instead, so
// their formats are its business.
func inputOf(in launcher.Input, query bool) (mlengine.Input, error) {
	if in.IsDir || len(in.Files) != 1 {
		return mlengine.Input{}, fmt.Errorf("ml engine: input %s: want one file, found a directory of %d", in.Name, len(in.Files))
	}
	f := in.Files[0]
	if in.Raw || f.Mem == nil {
		return mlengine.Input{}, fmt.Errorf("ml engine: input %s: not a decrypted envelope", in.Name)
	}
	mi := mlengine.Input{Path: f.Mem.Path()}
	if in.Name == mlengine.InputModel || query {
		return mi, nil
	}
	ft, err := mlengine.ParseFormat(f.ContentType.String())
	if err != nil {
		return mlengine.Input{}, fmt.Errorf("ml engine: input %s (%s): content type %s is not a table (encrypt it with --type csv or parquet)",
			in.Name, filepath.Base(f.Path), f.ContentType)
	}
	mi.Format = ft
	return mi, nil
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

func (s *shaper) Shape(ctx context.Context, query string, _ map[string]mlengine.Input) (mlengine.Input, error) {
	var tables []sqlengine.Input
	for _, in := range s.job.Inputs {
		t := sqlengine.Input{Name: in.Name}
		for _, f := range in.Files {
			if f.Mem == nil {
				return mlengine.Input{}, fmt.Errorf("input %s: not a decrypted envelope", in.Name)
			}
			if t.Format == "" {
				ft, err := sqlengine.FormatForContentType(f.ContentType)
				if err != nil {
					return mlengine.Input{}, fmt.Errorf("input %s: %s: %w", in.Name, filepath.Base(f.Path), err)
				}
				t.Format = ft
			}
			t.Files = append(t.Files, sqlengine.File{Path: f.Mem.Path(), Name: filepath.Base(f.Path)})
		}
		tables = append(tables, t)
	}
	r := s.job.Manifest.Resources
	e, err := sqlengine.Open(ctx, sqlengine.Config{MemoryLimit: r.Memory, Threads: r.Threads, Inputs: tables, OutputSlots: 1})
	if err != nil {
		return mlengine.Input{}, err
	}
	defer e.Close()
	m, err := memfd.New("ml-training-table")
	if err != nil {
		return mlengine.Input{}, fmt.Errorf("training table buffer: %w", err)
	}
	s.mems = append(s.mems, m)
	if err := e.Write(ctx, query, sqlengine.CSV, m.OSFile()); err != nil {
		return mlengine.Input{}, err
	}
	if err := m.Seal(); err != nil {
		return mlengine.Input{}, fmt.Errorf("training table buffer: %w", err)
	}
	s.job.Logf("ml engine: query shaped the training table")
	return mlengine.Input{Path: m.Path(), Format: mlengine.CSV}, nil
}

func (s *shaper) close() {
	for _, m := range s.mems {
		m.Close()
	}
	s.mems = nil
}
