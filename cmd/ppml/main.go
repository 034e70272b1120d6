// Command ppml is the single binary of the ppml platform: data-owner tools,
// the key service, the trusted launcher and the engines it runs.
package main

import (
	"os"

	"github.com/ppml/ppml/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
