package filecrypt

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the master and slave ends of a new pseudo-terminal.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestProgressBar: a bar on a terminal for inputs over 64 MiB, none when quiet
// (--json) or for small inputs.
func TestProgressBar(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, make([]byte, 65<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.bin")
	os.WriteFile(small, make([]byte, 1<<20), 0o600)

	run := func(in string, quiet bool) string {
		master, slave := openPTY(t)
		out := make(chan []byte)
		go func() {
			var b bytes.Buffer
			buf := make([]byte, 4096)
			for {
				master.SetReadDeadline(time.Now().Add(time.Second))
				n, err := master.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					out <- b.Bytes()
					return
				}
			}
		}()
		if _, err := EncryptFile(in, filepath.Join(t.TempDir(), "o.ppml"), k, Options{Quiet: quiet, Progress: slave}); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		return string(<-out)
	}
	if got := run(big, false); !strings.Contains(got, "100% [") || !strings.Contains(got, "encrypt big.bin") {
		t.Fatalf("no bar on a terminal: %q", got)
	}
	if got := run(big, true); got != "" {
		t.Fatalf("bar despite quiet: %q", got)
	}
	if got := run(small, false); got != "" {
		t.Fatalf("bar for a small file: %q", got)
	}
}
