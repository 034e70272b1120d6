// Package buildtest builds ppml's binaries for tests that run them as
// processes of their own: the hand-over from ppml to ppml-run, the demo
// (whose jobs run in ppml-run), the runtime's build tags. Like
// net/http/httptest it is imported only by tests.
//
// A test package builds what it needs once, from TestMain, and points the
// hand-over at it with the variable users have too ($PPML_RUN), so the
// code under test finds the binary exactly as it would in production:
//
//	func TestMain(m *testing.M) {
//		os.Exit(buildtest.Main(m, buildtest.Runtime()))
//	}
package buildtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ppml/ppml/internal/handover"
)

// Module is the module path the binaries are built from.
const Module = "github.com/ppml/ppml"

// Binary is a binary to build: a main package and its build tags.
type Binary struct {
	Pkg  string   // import path below Module, e.g. "cmd/ppml-run"
	Tags []string // e.g. ppml_no_sql
	// Env is the environment variable set to the binary's path for the
	// tests (PPML_RUN), or "".
	Env string
}

// Runtime is ppml-run with every engine, named by $PPML_RUN.
func Runtime(tags ...string) Binary {
	return Binary{Pkg: "cmd/" + handover.Runtime, Tags: tags, Env: handover.EnvVar(handover.Runtime)}
}

// PPML is the ppml CLI.
func PPML() Binary { return Binary{Pkg: "cmd/ppml"} }

// Build builds b into dir (its file is named after the package) and
// returns the binary's path.
func Build(dir string, b Binary) (string, error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return "", fmt.Errorf("buildtest: no go command to build %s", b.Pkg)
		}
	}
	out := filepath.Join(dir, path.Base(b.Pkg))
	args := []string{"build", "-o", out}
	if len(b.Tags) > 0 {
		args = append(args, "-tags", strings.Join(b.Tags, ","))
	}
	cmd := exec.Command(goBin, append(args, Module+"/"+b.Pkg)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("buildtest: go build %s: %v\n%s", b.Pkg, err, msg)
	}
	return out, nil
}

// built are the binaries Main built.
var built = map[string]string{}

func (b Binary) key() string { return b.Pkg + "," + strings.Join(b.Tags, ",") }

// Path is where Main built b ("" when it did not).
func (b Binary) Path() string { return built[b.key()] }

// Main builds the binaries into a temporary directory, sets their
// environment variables, runs the tests and removes the directory.
func Main(m *testing.M, bins ...Binary) int {
	if fuzzingOnly() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ppml-buildtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range bins {
		sub := filepath.Join(dir, strings.ReplaceAll(b.key(), "/", "_"))
		if err := os.Mkdir(sub, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		p, err := Build(sub, b)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		built[b.key()] = p
		if b.Env != "" {
			os.Setenv(b.Env, p)
		}
	}
	return m.Run()
}

// fuzzingOnly reports whether this process only fuzzes: a fuzz worker
// (go test starts one per -parallel, each running TestMain again) or a
// coordinator told to run no test (-run '^$', as scripts/fuzz.sh does).
// Neither runs a test that needs the binaries, and building ppml-run (cgo,
// DuckDB, XGBoost) in every worker held fuzzing at "gathering baseline
// coverage" for minutes on a loaded machine.
func fuzzingOnly() bool {
	if !flag.Parsed() {
		flag.Parse()
	}
	get := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	if get("test.fuzzworker") == "true" {
		return true
	}
	return get("test.fuzz") != "" && get("test.run") == "^$"
}
