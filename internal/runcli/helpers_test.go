package runcli

import (
	"bytes"
	"testing"

	// The engines these tests run; cmd/ppml-run links them the same way.
	_ "github.com/ppml/ppml/engine/exec"
	_ "github.com/ppml/ppml/engine/sql"

	"github.com/ppml/ppml/internal/command"
)

// run runs the ppml-run command tree on args with stdin, capturing stdout
// and stderr.
func run(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(bytes.NewReader(stdin))
	code := command.Main(root, args, &errb)
	return code, out.String(), errb.String()
}
