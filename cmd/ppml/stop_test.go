package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/stream/streamtest"
)

// TestRunStopDrains stops a long-running job (examples/stream/live's, on a
// real redis-server) through `ppml run` with SIGTERM: while it is set up
// (right after its first line, before the engine runs) and while it runs.
// Either way the job drains and ppml run exits 0: a stop is a long-running
// job's normal end. (ppml run used to exit 143, killed, when the signal
// came before it asked for signals, after reading the manifest.)
func TestRunStopDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and the runtime: not with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server (make deps installs it)")
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "stream", "live", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := streamtest.StartRedis(t)
	dir := t.TempDir()
	if !bytes.Contains(raw, []byte("127.0.0.1:6390")) {
		t.Fatal("examples/stream/live/job.yaml no longer names redis://127.0.0.1:6390")
	}
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), bytes.Replace(raw, []byte("127.0.0.1:6390"), []byte(r.Addr), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	owner, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"stream", "results", "state"} {
		if _, err := keyfile.Generate(filepath.Join(dir, k+".key"), false); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, k+".key"))
		if err != nil {
			t.Fatal(err)
		}
		envelopetest.Encrypt(t, filepath.Join(dir, k+".key.ppml"), owner.LocalKey, b, envelope.TypeBytes)
	}

	for _, tc := range []struct{ name, after string }{
		{"while set up", "WARNING: no key service"},
		{"while running", "stream: worker w1 joined group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ppml("run", "--manifest", filepath.Join(dir, "job.yaml"), "--key", filepath.Join(dir, "owner.key"))
			pr, pw := io.Pipe()
			c.Stderr = pw
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Process.Kill() })
			var (
				mu  sync.Mutex
				log strings.Builder
			)
			seen, scanned := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(scanned)
				sc := bufio.NewScanner(pr)
				once := sync.Once{}
				for sc.Scan() {
					mu.Lock()
					log.WriteString(sc.Text() + "\n")
					mu.Unlock()
					if strings.Contains(sc.Text(), tc.after) {
						once.Do(func() { close(seen) })
					}
				}
			}()
			logText := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
			select {
			case <-seen:
			case <-time.After(2 * time.Minute):
				t.Fatalf("no %q from ppml run:\n%s", tc.after, logText())
			}
			if err := c.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				c.Process.Kill()
				t.Fatalf("ppml run still runs a minute after SIGTERM:\n%s", logText())
			}
			pw.Close()
			<-scanned
			if err != nil {
				t.Fatalf("ppml run after SIGTERM %s: %v, want exit 0 (drained):\n%s", tc.name, err, logText())
			}
			for _, want := range []string{"stopping: stream engine draining", "stream engine: stopped after"} {
				if !strings.Contains(logText(), want) {
					t.Errorf("no %q in the log:\n%s", want, logText())
				}
			}
		})
	}
}
