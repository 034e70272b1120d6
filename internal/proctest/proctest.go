// Package proctest starts child processes for tests so that none outlives
// its test: each child leads its own process group (with whatever it
// starts, such as a worker's tracker), the whole group is killed when the
// test ends, and a child still running shortly before the test binary's
// own deadline (go test -timeout) is made to dump its goroutines (SIGQUIT)
// and then killed — go test's timeout panic runs no t.Cleanup, so a hung
// child would otherwise be left running.
package proctest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// margin is how long before the test binary's deadline a child is ended,
// leaving time for the test to report its output.
const margin = 30 * time.Second

// quitGrace is how long a child has to dump its goroutines after SIGQUIT.
const quitGrace = 3 * time.Second

// Start starts cmd (its SysProcAttr, Cancel and WaitDelay are set here).
// The test may Wait for it as usual; Wait returns at the latest shortly
// before the test binary's deadline, with the child's goroutine dump in
// its output when it is a Go program.
func Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// A grandchild holding the output pipe open must not hold Wait.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	stop := make(chan struct{})
	if deadline, ok := deadlineOf(t); ok {
		timer := time.NewTimer(time.Until(deadline.Add(-margin)))
		go func() {
			defer timer.Stop()
			select {
			case <-stop:
			case <-timer.C:
				t.Logf("proctest: %s still running near the test deadline: SIGQUIT, then SIGKILL to its process group", cmd.Path)
				syscall.Kill(pgid, syscall.SIGQUIT)
				select {
				case <-stop:
				case <-time.After(quitGrace):
				}
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}()
	}
	t.Cleanup(func() {
		close(stop)
		syscall.Kill(-pgid, syscall.SIGKILL)
		if cmd.ProcessState == nil {
			cmd.Wait() // reaps the leader
		}
		if !gone(pgid) {
			t.Errorf("proctest: processes of group %d (%s) still running after SIGKILL", pgid, cmd.Path)
		}
	})
}

// gone waits (a few seconds at most) until no live process of the group
// pgid is left (zombies, which the init process reaps, do not count).
func gone(pgid int) bool {
	for range 250 {
		if !alive(pgid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// alive reports whether a process of group pgid runs, from /proc.
func alive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

func deadlineOf(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}
