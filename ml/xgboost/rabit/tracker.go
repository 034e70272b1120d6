// Package rabit runs XGBoost's rabit collective between ppml workers over
// attested tunnels (package workload/tunnel) only. XGBoost's own traffic
// is plaintext TCP: the tracker link (ranks and peer addresses) and the
// links between workers (histograms, sketches). Each worker's runtime
// gives its XGBoost a loopback address for the tracker, relays the
// tracker protocol through a tunnel to the worker hosting the tracker,
// and rewrites every peer address the tracker hands out to a loopback
// port that tunnels to that peer; the peer's tunnel server connects the
// stream to its XGBoost's listening port, which its relay learned from
// the same protocol. No XGBoost byte crosses the network in the clear.
//
// The tracker is XGBoost's own (xgboost.tracker.RabitTracker, Debian's
// python3-xgboost), started by the first worker on loopback with ranks
// sorted by task id, so that rank i is worker i.
//
// The protocol relayed and the design are in docs/cluster.md.
package rabit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// trackerScript starts RabitTracker on 127.0.0.1 (an ephemeral port),
// prints the port, and serves until every worker shut down. It mends two
// ways XGBoost 1.7's tracker hangs, since the tracker serves its
// connections one at a time and a stuck one stalls every worker (whose
// XGBoost then waits on it without a bound, in its shutdown as well):
//
//   - ExSocket.recvall loops for ever on a connection that closed
//     mid-message (recv returns b"" and it tries again): a worker that
//     died or was stopped while its message was in flight. It now fails
//     the tracker, which exits non-zero.
//   - It reads from a worker without a timeout. Every read it makes
//     expects XGBoost's immediate answer (accept, where it waits for
//     workers to join, is not bounded), so argv[2] seconds of silence
//     fail it too.
//
// It also exits when its standard input closes: the worker that started
// it holds the other end, so a worker killed outright leaves no tracker
// behind (prctl's PDEATHSIG is not available under Gramine).
const trackerScript = `
import os, sys, threading, traceback
from xgboost import tracker

def recvall(self, nbytes):
    res, nread = [], 0
    while nread < nbytes:
        chunk = self.sock.recv(min(nbytes - nread, 1024))
        if not chunk:
            raise ConnectionError("a worker's connection closed in the middle of a message (the worker died or was stopped)")
        nread += len(chunk)
        res.append(chunk)
    return b"".join(res)

tracker.ExSocket.recvall = recvall
entry = tracker.WorkerEntry.__init__

def bounded(self, sock, addr):
    sock.settimeout(float(sys.argv[2]))
    entry(self, sock, addr)

tracker.WorkerEntry.__init__ = bounded

def orphaned():
    while os.read(0, 4096):
        pass
    os._exit(3)

threading.Thread(target=orphaned, daemon=True).start()
t = tracker.RabitTracker(host_ip="127.0.0.1", n_workers=int(sys.argv[1]), port=0, sortby="task")
print(t.port, flush=True)
try:
    t.accept_workers(int(sys.argv[1]))
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
os._exit(0)
`

// trackerReadTimeout bounds each read the tracker makes from a worker's
// connection: XGBoost answers at once, so a silent worker is a dead or
// frozen one (a var for tests).
var trackerReadTimeout = time.Minute

// Python is the interpreter that runs the tracker: Debian's, where
// python3-xgboost installs the tracker, when it exists (a python3 earlier
// on PATH, such as a virtual environment's, may lack the module).
var Python = func() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}()

// Tracker is XGBoost's tracker running as a child process.
type Tracker struct {
	Port  int
	cmd   *exec.Cmd
	stdin io.Closer
	done  chan struct{}
	err   error
	out   *tail
}

// StartTracker starts the tracker for workers workers.
func StartTracker(ctx context.Context, workers int) (*Tracker, error) {
	if workers < 1 {
		return nil, fmt.Errorf("rabit tracker: %d workers", workers)
	}
	cmd := exec.Command(Python, "-c", trackerScript, strconv.Itoa(workers), strconv.Itoa(int(trackerReadTimeout/time.Second)))
	out := &tail{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The tracker exits when this end closes: when Stop closes it, or
	// when this process dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rabit tracker: start %s (python3-xgboost): %w", Python, err)
	}
	t := &Tracker{cmd: cmd, stdin: stdin, done: make(chan struct{}), out: out}
	portc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		portc <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		t.err = cmd.Wait()
		close(t.done)
	}()
	select {
	case p := <-portc:
		if t.Port, err = strconv.Atoi(p); err != nil || t.Port <= 0 {
			t.Stop()
			return nil, fmt.Errorf("rabit tracker did not start: %s", out.String())
		}
		return t, nil
	case <-time.After(30 * time.Second):
		t.Stop()
		return nil, errors.New("rabit tracker did not start within 30s")
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	}
}

// Addr is the tracker's loopback address.
func (t *Tracker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.Port)) }

// Wait waits until the tracker exits (every worker shut down, or it
// failed) and returns its error, with what it printed.
func (t *Tracker) Wait() error {
	<-t.done
	if t.err != nil {
		return fmt.Errorf("rabit tracker: %v: %s", t.err, t.out.String())
	}
	return nil
}

// Done is closed when the tracker exited.
func (t *Tracker) Done() <-chan struct{} { return t.done }

// Stop ends the tracker.
func (t *Tracker) Stop() {
	select {
	case <-t.done:
		return
	default:
	}
	t.cmd.Process.Kill()
	t.stdin.Close()
	<-t.done
}

// tail keeps the last 4 KiB a child wrote.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
