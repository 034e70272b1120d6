// Package runcli is the command tree of ppml-run, the measured runtime:
// run (a job through the trusted launcher), sql (an ad-hoc or manifest sql
// job through the same launcher, results on the terminal) and version. A
// binary adds the commands of the engines built into it (cmd/ppml-run's
// engine files: ml). The ppml CLI hands `ppml run`, `ppml sql` and
// `ppml ml` over to this tree unchanged.
package runcli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/command"
)

// NewRoot builds the tree, with extra commands from the engines built in.
func NewRoot(extra ...func() *cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "ppml-run",
		Short: "The ppml runtime: run jobs on encrypted data inside a TEE",
		Long: `ppml-run is the binary that runs inside a Trusted Execution Environment and that data
owners pin (its MRENCLAVE under SGX, its measurement in the simulated TEE): the trusted
launcher, the engines built into it, the attesters and the key release client. It holds
nothing of the key service. The ppml CLI runs it for 'ppml run', 'ppml sql' and 'ppml ml'.
'ppml-run version --json' names the engines built in and the binary's own digests.`,
		Example: `  ppml-run run --manifest examples/python-hello/job.yaml --key owner.key
  ppml-run version --json`,
	}
	cmds := []func() *cobra.Command{newRunCmd, newSQLCmd, newVersionCmd}
	for _, f := range append(cmds, extra...) {
		root.AddCommand(f())
	}
	return command.Prepare(root)
}

// Main runs the tree on args and returns the exit code.
func Main(args []string, extra ...func() *cobra.Command) int {
	if len(args) > 0 && args[0] == "run" {
		catchStopSignals()
	}
	return command.Main(NewRoot(extra...), args, os.Stderr)
}

// earlyStop receives the SIGINT or SIGTERM that stops `ppml-run run`,
// caught from the moment Main starts (nil before). Until a process asks
// for a signal, Go's runtime ends it on SIGTERM with status 143; the run
// command used to ask only after reading the manifest and setting up its
// key source, so a job stopped in those first milliseconds (more on a
// loaded machine) died instead of draining. A signal caught early waits in
// the channel until the run command takes it.
var earlyStop chan os.Signal

func catchStopSignals() {
	earlyStop = make(chan os.Signal, 1)
	signal.Notify(earlyStop, syscall.SIGINT, syscall.SIGTERM)
}
