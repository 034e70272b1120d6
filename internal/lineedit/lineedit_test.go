package lineedit

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// TestEditor types on a pseudo-terminal: lines, editing, Ctrl-C (which
// must not end the input, as it does in x/term), history without the
// dropped, empty and repeated lines, raw mode only while reading, Ctrl-D.
func TestEditor(t *testing.T) {
	ptm, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	defer tty.Close()
	go io.Copy(io.Discard, ptm) // what the editor draws
	e, err := New(tty, tty)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// read types keys once the editor has put the terminal in raw mode (in
	// canonical mode the terminal would handle Ctrl-C itself).
	read := func(keys string) (string, error) {
		t.Helper()
		type result struct {
			line string
			err  error
		}
		r := make(chan result, 1)
		go func() {
			l, err := e.ReadLine("> ")
			r <- result{l, err}
		}()
		for deadline := time.Now().Add(10 * time.Second); !isRaw(t, tty); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the terminal never went raw")
			}
		}
		if _, err := ptm.Write([]byte(keys)); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-r:
			return res.line, res.err
		case <-time.After(10 * time.Second):
			t.Fatalf("keys %q: no line", keys)
			return "", nil
		}
	}
	line := func(keys, want string) {
		t.Helper()
		got, err := read(keys)
		if err != nil || got != want {
			t.Fatalf("keys %q: %q, %v; want %q", keys, got, err, want)
		}
	}
	line("SELECT 1;\r", "SELECT 1;")
	if isRaw(t, tty) {
		t.Fatal("the terminal was left in raw mode")
	}
	line("\r", "")
	line("SELECT 1;\r", "SELECT 1;") // a repeat: one history entry
	if _, err := read("SELECT secret\x03"); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Ctrl-C: %v", err)
	}
	// After Ctrl-C the editor reads on, keys typed ahead of it included.
	if _, err := read("half\x03SELECT 2;\r"); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Ctrl-C: %v", err)
	}
	if got, err := e.ReadLine("> "); err != nil || got != "SELECT 2;" {
		t.Fatalf("after Ctrl-C: %q, %v", got, err)
	}
	// Up twice: the line before the last, neither the dropped lines nor the
	// repeat nor the empty line; Left and insertion edit it.
	line("\x1b[A\x1b[A\x1b[D 0\r", "SELECT 1 0;")
	if h := e.hist.lines; strings.Join(h, "|") != "SELECT 1;|SELECT 2;|SELECT 1 0;" {
		t.Fatalf("history %q", h)
	}
	line("xy\x01\x04\r", "y") // in a line, Ctrl-D deletes under the cursor
	if _, err := read("\x04"); err != io.EOF {
		t.Fatalf("Ctrl-D: %v, want EOF", err)
	}
}

// TestNotATerminal: New refuses what cannot be put in raw mode, so the
// caller falls back to reading lines as they come.
func TestNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := New(r, w); err == nil {
		t.Fatal("an editor on a pipe")
	}
}

func isRaw(t *testing.T, tty *os.File) bool {
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ICANON == 0
}

func TestHistoryBound(t *testing.T) {
	skip := false
	h := &history{skip: &skip}
	for i := 0; i < MaxHistory+10; i++ {
		h.Add(strings.Repeat("x", i+1))
	}
	if h.Len() != MaxHistory || h.At(0) != strings.Repeat("x", MaxHistory+10) || h.At(MaxHistory-1) != strings.Repeat("x", 11) {
		t.Fatalf("len %d, newest %d, oldest %d", h.Len(), len(h.At(0)), len(h.At(h.Len()-1)))
	}
}
