// Command ppml-run is the ppml runtime: the binary that runs inside a
// Trusted Execution Environment and that data owners pin. It holds the
// trusted launcher, the engines built into it, the attesters and the key
// release client — nothing of the key service, no verifiers, no benchmarks
// (import_test.go keeps it so).
//
// Each engine is linked by a file of its own with a build tag, so that an
// owner can build a runtime with only the engines they approve:
//
//	go build -tags ppml_no_sql,ppml_no_ml,ppml_no_serve,ppml_no_stream,ppml_no_dl ./cmd/ppml-run   # exec only
//
// `ppml-run version --json` lists the engines built in.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/runcli"
)

// commands are added by the engine files (engine_*.go) of the engines
// built in.
var commands []func() *cobra.Command

func main() {
	os.Exit(runcli.Main(os.Args[1:], commands...))
}
