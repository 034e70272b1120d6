// Package benchcli is the command tree of ppml-bench: one command per
// benchmark (envelope, attest, release, tpch, ml, serve, stream, dl, xgboost-dist), each measuring ppml
// against a baseline in the same run. The measurements themselves live in
// the packages under bench/; `ppml bench X` hands over to `ppml-bench X`.
package benchcli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/command"
)

// NewRoot builds the tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ppml-bench",
		Short: "Measure ppml's performance on this machine, against a baseline in the same run",
		Long: `ppml-bench measures ppml on this machine; every figure is a ratio against a baseline
measured in the same run (raw AES-GCM, plain DuckDB, python3-xgboost, ...). 'ppml bench X'
runs 'ppml-bench X'. --json prints a machine-readable result.`,
		Example: `  ppml bench envelope
  ppml-bench envelope --size 256MiB --json`,
	}
	for _, f := range []func() *cobra.Command{newBenchEnvelopeCmd, newBenchAttestCmd, newBenchReleaseCmd, newBenchTPCHCmd, newBenchMLCmd, newBenchServeCmd, newBenchStreamCmd, newBenchDLCmd, newBenchXGBDistCmd} {
		root.AddCommand(f())
	}
	return command.Prepare(root)
}

// Main runs the tree on args and returns the exit code.
func Main(args []string) int {
	return command.Main(NewRoot(), args, os.Stderr)
}
