// Package handover finds and starts the ppml binaries that hold what the
// ppml CLI does not link: ppml-run, the measured runtime (launcher, engines,
// attesters); ppml-run-dl, the same runtime with the deep-learning engine
// (libtorch); and ppml-bench, the benchmarks. `ppml run`, `ppml sql`,
// `ppml ml` and `ppml bench` replace the ppml process with them, so signals
// and exit statuses pass straight through.
//
// The deep-learning runtime is a binary of its own because libtorch brings
// about 280 shared libraries: linked into every runtime they would cost each
// job over a second of CPU time before it starts, and every one of them is
// code an SGX enclave must trust and measure, for owners who never approved
// deep learning.
//
// A binary is looked up, in order:
//
//  1. in the environment variable that names it ($PPML_RUN, $PPML_BENCH):
//     that file and no other, so a test or an owner can pin the exact
//     runtime to use;
//  2. beside the ppml executable (its path with symbolic links resolved),
//     where `make build` and `make install` put all three;
//  3. on $PATH.
package handover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ppml/ppml/job"
)

// The binaries.
const (
	Runtime   = "ppml-run"
	RuntimeDL = "ppml-run-dl" // ppml-run with the dl engine (make build builds both)
	Bench     = "ppml-bench"
)

// RuntimeFor is the runtime that runs a job: RuntimeDL for a job on libtorch
// — every dl job, and a serve job with a TorchScript model (declared, or named by
// models[].backend) — and
// Runtime for every other.
func RuntimeFor(m *job.Manifest) string {
	if m.Engine == "dl" {
		return RuntimeDL
	}
	if p, ok := m.Parameters.(libtorchUser); ok && p.UsesLibtorch() {
		return RuntimeDL
	}
	return Runtime
}

// libtorchUser is implemented by the parameters of engines whose jobs may
// run on libtorch (engine/dl/dlspec, engine/serve/servespec).
type libtorchUser interface{ UsesLibtorch() bool }

// EnvVar is the environment variable that names a binary's path:
// PPML_RUN for ppml-run, PPML_RUN_DL for ppml-run-dl, PPML_BENCH for
// ppml-bench.
func EnvVar(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// NotFoundError lists where a binary was looked for.
type NotFoundError struct {
	Name   string
	Looked []string // each place, with why it did not do
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s not found (looked %s); build it with `make build` (bin/%s beside bin/ppml), install it with `make install`, or name it with %s=/path/to/%s",
		e.Name, strings.Join(e.Looked, "; "), e.Name, EnvVar(e.Name), e.Name)
}

// Find returns the path of the named binary (Runtime, RuntimeDL or Bench).
func Find(name string) (string, error) {
	nf := &NotFoundError{Name: name}
	env := EnvVar(name)
	if p := os.Getenv(env); p != "" {
		if err := executable(p); err != nil {
			nf.Looked = append(nf.Looked, fmt.Sprintf("in $%s=%s: %v", env, p, err))
			return "", nf
		}
		return filepath.Abs(p)
	}
	nf.Looked = append(nf.Looked, "in $"+env+" (not set)")
	if self, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(self); err == nil {
			self = real
		}
		p := filepath.Join(filepath.Dir(self), name)
		if err := executable(p); err == nil {
			return p, nil
		} else {
			nf.Looked = append(nf.Looked, fmt.Sprintf("beside %s: %v", self, err))
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	nf.Looked = append(nf.Looked, "on $PATH="+os.Getenv("PATH"))
	return "", nf
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// Exec replaces this process with the named binary, run with args (argv[0]
// is its path) and this process's environment. It returns only when the
// binary cannot be found or started.
func Exec(name string, args []string) error {
	p, err := Find(name)
	if err != nil {
		return err
	}
	if err := syscall.Exec(p, append([]string{p}, args...), os.Environ()); err != nil {
		return fmt.Errorf("start %s: %w", p, err)
	}
	return nil
}
