package mlengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/envelope"
)

// Files is a job on local files, as ppml ml runs it for a data scientist working on plaintext
// or locally-keyed data (the trusted path is ppml run, which decrypts inside the TEE).
type Files struct {
	Inputs  map[string]string // input name → path
	Outputs map[string]string // output name → path
	// Format of the table inputs; "" takes it from the file name (.csv, .parquet, with or
	// without a trailing .ppml).
	Format mlspec.Format
	// Resolver, when set, opens every input as a ppml envelope (decrypted on the fly, never
	// written out); Wrapper, when set, encrypts every output.
	Resolver envelope.KeyResolver
	Wrapper  envelope.KeyWrapper
	// Overwrite allows replacing existing output files.
	Overwrite bool
}

type pendingOutput interface {
	io.Writer
	Close() error
	Abort() error
}

// RunFiles runs a job on files. Outputs are written atomically and only when the job
// succeeds; on failure no output file appears.
func RunFiles(ctx context.Context, cfg Config, spec *mlspec.Params, f Files) (*Result, error) {
	inputs := map[string]Input{}
	for name, path := range f.Inputs {
		in := Input{Path: path, Format: f.Format}
		if name != mlspec.InputModel && in.Format == "" {
			fm, ok := mlspec.FormatOf(path)
			if !ok {
				return nil, fmt.Errorf("input %s: cannot tell the table format from the name %s (use .csv or .parquet, or give the format)", name, filepath.Base(path))
			}
			in.Format = fm
		}
		if f.Resolver != nil {
			ef, err := envelope.OpenFile(path, f.Resolver)
			if err != nil {
				return nil, fmt.Errorf("input %s: %w", name, err)
			}
			defer ef.Close()
			in = Input{ReaderAt: ef, Size: ef.Size(), Format: in.Format}
		}
		inputs[name] = in
	}
	outputs := map[string]Output{}
	var pending []pendingOutput
	defer func() {
		for _, p := range pending {
			p.Abort()
		}
	}()
	for name, path := range f.Outputs {
		var w pendingOutput
		if f.Wrapper != nil {
			ct := envelope.TypeJSON
			if name == mlspec.OutputPredictions {
				ct = envelope.TypeCSV
				if fm, _ := mlspec.FormatOf(path); fm == mlspec.Parquet {
					ct = envelope.TypeParquet
				}
			} else if name == mlspec.OutputModel {
				ct = envelope.TypeModel
			}
			fw, err := envelope.CreateFile(path, f.Wrapper, &envelope.Options{ContentType: ct}, f.Overwrite)
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", name, err)
			}
			w = fw
		} else {
			af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: f.Overwrite})
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", name, err)
			}
			w = af
		}
		pending = append(pending, w)
		o := Output{W: w}
		if name == mlspec.OutputPredictions {
			o.Format, _ = mlspec.FormatOf(path)
		}
		outputs[name] = o
	}
	res, err := Run(ctx, cfg, spec, inputs, outputs)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, p := range pending {
		errs = append(errs, p.Close())
	}
	pending = nil
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("write outputs: %w", err)
	}
	return res, nil
}

// ExportFile reads the model file at path (an envelope opened with kr when kr is set) and
// writes the model inside it to out, atomically and in plaintext (see Export).
func ExportFile(path, out string, kr envelope.KeyResolver, overwrite bool) (*Model, error) {
	in := Input{Path: path}
	if kr != nil {
		ef, err := envelope.OpenFile(path, kr)
		if err != nil {
			return nil, err
		}
		defer ef.Close()
		in = Input{ReaderAt: ef, Size: ef.Size()}
	}
	raw, err := in.readAll(MaxModelSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	inner, m, err := Export(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	af, err := atomicfile.Create(out, atomicfile.Options{Perm: 0o600, Overwrite: overwrite})
	if err != nil {
		return nil, err
	}
	defer af.Abort()
	if _, err := af.Write(inner); err != nil {
		return nil, err
	}
	return m, af.Commit()
}
