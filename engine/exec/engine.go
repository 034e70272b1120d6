package exec

import (
	"context"
	"fmt"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
)

// engine binds Run to the launcher: the launcher's decrypted inputs and
// output memfds become the program's descriptors.
type engine struct{}

func (engine) Spec() job.Spec { return execspec.Spec }

func (engine) Run(ctx context.Context, j *launcher.Job) error {
	params, ok := j.Manifest.Parameters.(*execspec.Params)
	if !ok {
		return fmt.Errorf("exec engine: parameters are %T", j.Manifest.Parameters)
	}
	inputs := make([]Input, len(j.Inputs))
	for i, in := range j.Inputs {
		ei := Input{Name: in.Name, IsDir: in.IsDir}
		for _, f := range in.Files {
			if !in.IsDir {
				ei.File = f.Mem
				continue
			}
			ei.Dir = append(ei.Dir, DirEntry{Path: f.Rel, File: f.Mem})
		}
		inputs[i] = ei
	}
	outputs := make([]Output, len(j.Outputs))
	for i, o := range j.Outputs {
		outputs[i] = Output{Name: o.Name, File: o.File}
	}
	j.Logf("running %s", params.Command[0])
	return Run(ctx, Config{Params: params, Inputs: inputs, Outputs: outputs,
		Stdout: j.Stdout, Stderr: j.Stderr, Grace: j.Grace, TempRoot: j.TempRoot,
		Memory: j.Manifest.Resources.Memory})
}

func init() { launcher.Register(engine{}) }
