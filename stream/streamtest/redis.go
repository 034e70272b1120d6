package streamtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server a test started on a free loopback port, with its
// files in a temporary directory and an append-only file synced on every
// write (so a restart loses nothing); it stops when the test ends.
type Redis struct {
	Addr string
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server (installed by make deps).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (make deps installs it)")
	}
	r := &Redis{dir: t.TempDir(), port: FreePort(t)}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.Start(t)
	t.Cleanup(r.Stop)
	return r
}

// Stop shuts the server down (SIGTERM).
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.cmd.Wait()
	r.cmd = nil
}

// Start (re)starts a stopped server on its port with its files.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	dir := r.dir
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("tcp", r.Addr)
		if err == nil {
			// Ready when it answers PING (not -LOADING its files).
			c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			c.Close()
			if err == nil && strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server did not start: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a TCP port free on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
