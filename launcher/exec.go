package launcher

import (
	"context"
	"fmt"

	"github.com/ppml/ppml/engine/exec"
	"github.com/ppml/ppml/job"
)

// execEngine runs an external program (engine/exec) on the job's memfds.
func execEngine(ctx context.Context, j *Job) error {
	params, ok := j.Manifest.Parameters.(*job.ExecParams)
	if !ok {
		return fmt.Errorf("exec engine: parameters are %T", j.Manifest.Parameters)
	}
	inputs := make([]exec.Input, len(j.Inputs))
	for i, in := range j.Inputs {
		ei := exec.Input{Name: in.Name, IsDir: in.IsDir}
		for _, f := range in.Files {
			if !in.IsDir {
				ei.File = f.Mem
				continue
			}
			ei.Dir = append(ei.Dir, exec.DirEntry{Path: f.Rel, File: f.Mem})
		}
		inputs[i] = ei
	}
	outputs := make([]exec.Output, len(j.Outputs))
	for i, o := range j.Outputs {
		outputs[i] = exec.Output{Name: o.Name, File: o.File}
	}
	j.Logf("running %s", params.Command[0])
	return exec.Run(ctx, exec.Config{Params: params, Inputs: inputs, Outputs: outputs,
		Stdout: j.Stdout, Stderr: j.Stderr, Grace: j.Grace, TempRoot: j.TempRoot,
		Memory: j.Manifest.Resources.Memory})
}

func init() { RegisterEngine(job.ExecEngine, EngineFunc(execEngine)) }
