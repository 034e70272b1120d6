package dlengine

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/engine/dl/dlspec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
)

// The dl engine under the trusted launcher: the decrypted input memfds and the output memfds
// go to Run; resources.memory and resources.threads bound it.
func init() { launcher.Register(engine{}) }

// engine is the dl engine's launcher.Engine.
type engine struct{}

func (engine) Spec() job.Spec { return dlspec.Spec }

func (engine) Run(ctx context.Context, j *launcher.Job) error {
	p, ok := j.Manifest.Parameters.(*dlspec.Params)
	if !ok {
		return fmt.Errorf("dl engine: parameters are %T", j.Manifest.Parameters)
	}
	inputs := make(map[string]Input, len(j.Inputs))
	for _, in := range j.Inputs {
		if in.IsDir || len(in.Files) != 1 {
			return fmt.Errorf("dl engine: input %s: want one file, found a directory of %d", in.Name, len(in.Files))
		}
		f := in.Files[0]
		if in.Raw || f.Mem == nil {
			return fmt.Errorf("dl engine: input %s: not a decrypted envelope", in.Name)
		}
		di := Input{Path: f.Mem.Path()}
		if in.Name == dlspec.InputTrain || in.Name == dlspec.InputData && !p.Images {
			ft, err := ParseFormat(f.ContentType.String())
			if err != nil {
				ft, err = formatOfName(f.Path)
			}
			if err != nil {
				return fmt.Errorf("dl engine: input %s (%s): content type %s is not a table (encrypt it with --type csv or parquet)", in.Name, filepath.Base(f.Path), f.ContentType)
			}
			di.Format = ft
		}
		inputs[in.Name] = di
	}
	outputs := make(map[string]Output, len(j.Outputs))
	for _, o := range j.Outputs {
		outputs[o.Name] = Output{W: o.File.OSFile()}
	}
	cfg := Config{
		// dlspec.DefaultThreads (1) when the manifest omits threads: the spec supplies it to
		// job.Parse, so it is also in the digest.
		Threads:   j.Manifest.Resources.Threads,
		Memory:    j.Manifest.Resources.Memory,
		JobDigest: j.Manifest.DigestString(),
		Logf:      j.Logf,
	}
	j.Logf("dl engine: %s job, %d input(s), %d output(s)", p.Task, len(inputs), len(outputs))
	res, err := Run(ctx, cfg, p, inputs, outputs)
	if err != nil {
		return err
	}
	j.Logf("dl engine: %s done on %d rows (peak memory %d MiB of %d MiB)", res.Task, res.Rows, res.PeakMemory>>20, cfg.Memory>>20)
	return nil
}

// formatOfName guesses a table's format from its file name (x.csv.ppml).
func formatOfName(path string) (Format, error) {
	name := strings.ToLower(strings.TrimSuffix(filepath.Base(path), ".ppml"))
	switch {
	case strings.HasSuffix(name, ".csv"):
		return CSV, nil
	case strings.HasSuffix(name, ".parquet"):
		return Parquet, nil
	}
	return "", fmt.Errorf("%s: not .csv or .parquet", name)
}
