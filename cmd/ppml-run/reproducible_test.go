package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestReproducibleQuick builds an exec-only runtime in two copies of the
// tree at different paths with the flags of make build and compares them
// (scripts/reproducible-check.sh --quick). `make reproducible-check` does
// the same for the whole runtime, each build with an empty cache.
func TestReproducibleQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runtime twice")
	}
	out, err := exec.Command("bash", "../../scripts/reproducible-check.sh", "--quick").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reproducible: both builds of bin/ppml-run are identical") {
		t.Fatalf("reproducible-check --quick: %v\n%s", err, out)
	}
}
