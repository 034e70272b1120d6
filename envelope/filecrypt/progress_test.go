package filecrypt

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
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

// TestProgressBar: on a terminal, a bar for inputs over 64 MiB followed by
// the sync to disk as its own line; bytes and rate (no percentage) for a
// large input from a pipe; nothing when quiet (--json) or for small inputs.
func TestProgressBar(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, make([]byte, 65<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.bin")
	os.WriteFile(small, make([]byte, 1<<20), 0o600)

	// onTerminal runs f with a pseudo-terminal as the progress output and
	// returns what was drawn there.
	onTerminal := func(f func(tty *os.File)) string {
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
		f(slave)
		slave.Close()
		return string(<-out)
	}
	encrypt := func(in string, quiet bool) string {
		return onTerminal(func(tty *os.File) {
			if _, err := EncryptFile(in, filepath.Join(t.TempDir(), "o.ppml"), k, Options{Quiet: quiet, Progress: tty}); err != nil {
				t.Fatal(err)
			}
		})
	}
	got := encrypt(big, false)
	if !strings.Contains(got, "100% [") || !strings.Contains(got, "encrypt big.bin") {
		t.Fatalf("no bar on a terminal: %q", got)
	}
	if !regexp.MustCompile(`\r\n.*sync o\.ppml to disk  \d+\.\ds\r\n$`).MatchString(got) {
		t.Fatalf("the sync is not shown as its own phase: %q", got)
	}
	if got := encrypt(big, true); got != "" {
		t.Fatalf("bar despite quiet: %q", got)
	}
	if got := encrypt(small, false); got != "" {
		t.Fatalf("bar for a small file: %q", got)
	}
	// From a pipe: bytes and rate, no percentage.
	got = onTerminal(func(tty *os.File) {
		o := Options{Progress: tty, Stdin: struct{ io.Reader }{bytes.NewReader(make([]byte, 65<<20))}}
		if _, err := EncryptFile("-", filepath.Join(t.TempDir(), "o.ppml"), k, o); err != nil {
			t.Fatal(err)
		}
	})
	if !regexp.MustCompile(`encrypt stdin 65\.0 MiB  [0-9.]+ [KMG]iB/s`).MatchString(got) || strings.Contains(got, "%") {
		t.Fatalf("stdin: %q", got)
	}
	// Decrypting a file to a file: the bar, then the sync.
	enc := filepath.Join(t.TempDir(), "big.bin.ppml")
	if _, err := EncryptFile(big, enc, k, quiet); err != nil {
		t.Fatal(err)
	}
	got = onTerminal(func(tty *os.File) {
		if _, err := DecryptFile(enc, filepath.Join(t.TempDir(), "plain"), k, Options{Progress: tty}); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.Contains(got, "decrypt big.bin.ppml 100% [") || !strings.Contains(got, "sync plain to disk") {
		t.Fatalf("decrypt: %q", got)
	}
}
