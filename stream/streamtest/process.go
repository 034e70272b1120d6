package streamtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Worker is a worker process: the test binary run again with the worker's
// name and the broker's address in its environment (see Main).
type Worker struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// StartWorker starts a worker process; its log goes to a file the test
// prints when it fails.
func StartWorker(t testing.TB, name string, b Broker) *Worker {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"="+name, envAddr+"="+b.Addr())
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w := &Worker{t: t, name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { w.err = cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		w.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("log of worker %s (pid %d):\n%s", name, cmd.Process.Pid, b)
		}
	})
	return w
}

// Kill sends SIGKILL: the worker dies at once, mid-whatever it was doing.
func (w *Worker) Kill() {
	select {
	case <-w.done:
		return
	default:
	}
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// Stop sends SIGTERM and waits for the worker to commit and leave.
func (w *Worker) Stop() {
	w.t.Helper()
	select {
	case <-w.done:
		w.t.Errorf("worker %s had exited: %v", w.name, w.err)
		return
	default:
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		if w.err != nil {
			w.t.Errorf("worker %s: %v", w.name, w.err)
		}
	case <-time.After(60 * time.Second):
		w.t.Errorf("worker %s did not stop", w.name)
		w.Kill()
	}
}

// Running fails the test if the worker exited.
func (w *Worker) Running() {
	w.t.Helper()
	select {
	case <-w.done:
		w.t.Fatalf("worker %s exited: %v", w.name, w.err)
	default:
	}
}

// WaitLog waits until the worker's log has at least n lines containing s.
func (w *Worker) WaitLog(s string, n int, limit time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(w.log)
		if strings.Count(string(b), s) >= n {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("worker %s: no %d lines with %q after %v", w.name, n, s, limit)
		}
		w.Running()
		time.Sleep(20 * time.Millisecond)
	}
}

// Count returns the number of lines of the worker's log containing s.
func (w *Worker) Count(s string) int {
	b, _ := os.ReadFile(w.log)
	return strings.Count(string(b), s)
}
