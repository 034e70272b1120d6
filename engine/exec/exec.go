// Package exec is the exec engine: it runs an external program on
// decrypted inputs that live only in memory and collects its outputs in
// in-memory files, which the launcher encrypts when the program succeeds.
// It registers itself with the launcher (import it for that); its manifest
// parameters are read by package execspec.
//
// # How the program finds its files
//
// The program gets PPML_INPUT_<NAME> and PPML_OUTPUT_<NAME>, paths it opens
// by name. The contract is the same on every platform (docs/jobs.md):
//
//   - an input is a read-only regular file (a directory input, a directory
//     of them), which the program may open as often as it likes, seek in
//     and map;
//   - an output is a named pipe, which the program opens for writing once
//     and writes from start to end.
//
// Behind it, the hand-over takes channels Gramine supports between the
// enclaves of one application, since there the child is an enclave of its
// own with its own tmpfs: pipes (handover.go, stream.go, outputs.go). Where
// an input is a memfd (Linux) it is shared as an inherited descriptor,
// /proc/self/fd/N, with no copy. The child starts as a shim (shim.go) that
// receives streamed inputs, makes the private working directory and sets
// the memory limit before it execve's the program.
//
// The alternative of opening /proc/<launcher pid>/fd/N was rejected: it
// exposes every descriptor of the launcher to the program, needs
// ptrace-level access to the launcher, and does not cross Gramine's
// enclaves.
//
// # Stopping
//
// The child runs in its own process group. When the context is cancelled
// (SIGINT/SIGTERM to the launcher) the group gets SIGTERM, then SIGKILL
// after Config.Grace; when the program ends, what is left of its group is
// killed too. There is no Pdeathsig (prctl, which Gramine lacks): a launcher
// killed with SIGKILL leaves the program to finish on its own. Under Gramine
// it is an enclave of the same application, holding plaintext only in its
// own enclave memory, and its outputs can no longer reach a launcher that
// would encrypt them; on Linux it holds memfds that vanish when it ends.
//
// # Memory
//
// Config.Memory becomes the program's RLIMIT_DATA, set by the shim just
// before it execve's the program.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/memfd"
)

// Input is a decrypted input: a single file (File) or a directory (Dir).
type Input struct {
	Name string
	File *memfd.File
	Dir  []DirEntry
	// IsDir is set for a directory input, even an empty one.
	IsDir bool
}

// DirEntry is one file of a directory input; Path is relative and uses '/'.
type DirEntry struct {
	Path string
	File *memfd.File
}

// Output is an in-memory file the program writes.
type Output struct {
	Name string
	File *memfd.File
}

// DefaultGrace is how long a cancelled program has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// Config is one run.
type Config struct {
	Params  *execspec.Params
	Inputs  []Input
	Outputs []Output
	Stdout  io.Writer
	Stderr  io.Writer
	// Grace is the time between SIGTERM and SIGKILL on cancellation; 0 means DefaultGrace.
	Grace time.Duration
	// TempRoot is where the private working directory is made when the job
	// sets none: "" means /dev/shm when it is a memory file system, else
	// os.TempDir().
	TempRoot string
	// Memory is the program's RLIMIT_DATA in bytes (resources.memory); 0
	// means no limit. See limit.go.
	Memory int64
}

// ExitError is a program that ran and failed: a non-zero exit status or
// death by a signal.
type ExitError struct {
	Code   int    // exit status; 128+signal when killed
	Signal string // the signal that killed it, if any
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("program killed by %s", e.Signal)
	}
	return fmt.Sprintf("program exited with status %d", e.Code)
}

// ErrStopped is returned (wrapped) when the context stopped the program.
var ErrStopped = errors.New("program stopped")

// BasePATH is the PATH the program gets unless the job sets one.
var BasePATH = strings.Join(execspec.PATH, ":")

// Run runs the program to completion. It returns nil when it exited 0, an
// *ExitError when it failed, and an error wrapping ErrStopped (and the
// context's cause) when ctx ended first; the program is then gone.
func Run(ctx context.Context, cfg Config) error {
	p := cfg.Params
	if p == nil || len(p.Command) == 0 {
		return errors.New("exec: no command")
	}
	prog, err := execspec.LookProgram(p.Command[0])
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("exec: the runtime's own path (for the shim): %w", err)
	}
	private, err := makePrivateDir(cfg.TempRoot)
	if err != nil {
		return err
	}
	defer os.RemoveAll(private)

	spec := shimSpec{memory: cfg.Memory, workdir: p.Workdir, prog: prog, argv: p.Command}
	if spec.workdir == "" {
		// Made here and, for Gramine (a child enclave does not see the
		// parent's tmpfs directories), again by the shim in the child.
		spec.workdir, spec.mkWork = filepath.Join(private, "work"), true
		if err := os.Mkdir(spec.workdir, 0o700); err != nil {
			return fmt.Errorf("exec: working directory: %w", err)
		}
	}
	cmd := osexec.Command(self)
	cmd.Args = spec.args()
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	vars := map[string]string{"PATH": BasePATH, "HOME": spec.workdir, "TMPDIR": spec.workdir}

	// Inputs: shared where they are memfds, streamed otherwise (handover.go).
	h, err := planInputs(cfg.Inputs, private)
	if err != nil {
		return err
	}
	defer h.cleanup()
	if len(h.stream) > 0 {
		spec.inputDir = h.inputDir
		cmd.Args = spec.args()
		cmd.ExtraFiles = append(cmd.ExtraFiles, h.pipeR) // streamFD
	}
	if err := h.share(cmd, vars, private); err != nil {
		return err
	}
	outDir := filepath.Join(private, "out")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		return fmt.Errorf("exec: output directory: %w", err)
	}
	fifos := make([]string, len(cfg.Outputs))
	for i, o := range cfg.Outputs {
		if fifos[i], err = makeFIFO(outDir, o.Name); err != nil {
			return err
		}
		vars[job.OutputEnv(o.Name)] = fifos[i]
	}
	for _, v := range p.Env {
		if v.Passthrough {
			if val, ok := os.LookupEnv(v.Name); ok {
				vars[v.Name] = val
			} else {
				delete(vars, v.Name)
			}
			continue
		}
		vars[v.Name] = v.Value
	}
	cmd.Env = make([]string, 0, len(vars)+1)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// The shim removes it before the program starts.
	cmd.Env = append(cmd.Env, shimEnv+"=1")

	grace := cfg.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	// A grandchild that keeps stdout open must not block Wait for ever.
	cmd.WaitDelay = grace
	// No Pdeathsig: it is prctl(PR_SET_PDEATHSIG), which Gramine does not
	// implement (cmd.Start would fail). The launcher ends the group itself
	// on every way out it lives through (below, and on SIGINT/SIGTERM via
	// the context).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec: start %s: %w", prog, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// From here every way out ends the group first, then the hand-over:
	// the collectors' last reads must see everything the group wrote.
	sent := h.send()
	collectors := make([]*collector, 0, len(cfg.Outputs))
	finish := func() (err error) {
		killGroup(pgid)
		for _, c := range collectors {
			if cerr := c.stop(); err == nil {
				err = cerr
			}
		}
		if serr := <-sent; err == nil && serr != nil {
			err = fmt.Errorf("exec: send inputs: %w", serr)
		}
		return err
	}
	for i, o := range cfg.Outputs {
		c, err := startCollector(o.Name, fifos[i], o.File.OSFile())
		if err != nil {
			unix.Kill(-pgid, unix.SIGKILL)
			<-done
			finish()
			return err
		}
		collectors = append(collectors, c)
	}

	select {
	case err := <-done:
		// The leader is gone; members of its group that outlived it may
		// still write.
		herr := finish()
		if err := exitError(err); err != nil {
			return err
		}
		return herr
	case <-ctx.Done():
	}
	unix.Kill(-pgid, unix.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		unix.Kill(-pgid, unix.SIGKILL)
		<-done
	}
	finish()
	return fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx))
}

// killGroup kills what is left of the program's process group and waits
// briefly for it to go, so no member still holds an input when Run returns.
// (Members reparented to an init that does not reap stay as zombies, which
// hold no descriptors.)
func killGroup(pgid int) {
	if unix.Kill(-pgid, unix.SIGKILL) != nil {
		return // no such group: nothing outlived the leader
	}
	for i := 0; i < 100; i++ {
		if !groupAlive(pgid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether a non-zombie process is still in group pgid.
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return unix.Kill(-pgid, 0) == nil
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

func exitError(err error) error {
	if err == nil {
		return nil
	}
	var ee *osexec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("exec: %w", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &ExitError{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal())}
	}
	return &ExitError{Code: ee.ExitCode()}
}

// makePrivateDir makes a fresh mode-0700 directory in memory when it can.
func makePrivateDir(root string) (string, error) {
	if root == "" {
		root = os.TempDir()
		var st unix.Statfs_t
		if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
			root = "/dev/shm"
		}
	}
	d, err := os.MkdirTemp(root, "ppml-exec-")
	if err != nil {
		return "", fmt.Errorf("exec: private directory: %w", err)
	}
	return d, nil
}
