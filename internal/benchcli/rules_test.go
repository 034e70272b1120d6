package benchcli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ppml/ppml/internal/command"
)

// Zero and negative sizes of a benchmark are usage errors (docs/cli.md).
func TestBenchNumericFlags(t *testing.T) {
	for _, args := range [][]string{{"envelope", "--rounds", "0"}, {"release", "--duration", "-1s"}, {"ml", "--rows", "-5"}} {
		var errb bytes.Buffer
		if code := command.Main(NewRoot(), args, &errb); code != 2 || !strings.Contains(errb.String(), "--") {
			t.Errorf("ppml-bench %s: exit %d, %q", strings.Join(args, " "), code, errb.String())
		}
	}
}
