// Command ppml-bench runs ppml's benchmarks (`ppml bench X` hands over to
// `ppml-bench X`). It is a binary of its own so that neither the runtime
// that owners pin nor the CLI links benchmark code.
package main

import (
	"os"

	"github.com/ppml/ppml/internal/benchcli"
)

func main() { os.Exit(benchcli.Main(os.Args[1:])) }
