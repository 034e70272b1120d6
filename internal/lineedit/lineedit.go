// Package lineedit reads lines typed at a terminal with editing and an
// in-memory history, for interactive sessions such as `ppml sql`: the arrow
// keys move the cursor and recall earlier lines, Home/End (Ctrl-A/Ctrl-E),
// Ctrl-U, Ctrl-K and Ctrl-W edit, Ctrl-C drops the line being typed and
// Ctrl-D on an empty line ends the input.
//
// The editing is golang.org/x/term's Terminal; this package adds what an
// interactive session needs on top of it: the terminal in raw mode only
// while a line is read (so output in between is written as usual), Ctrl-C
// reported as an interruption the caller can tell from the end of input
// (x/term ends the input on both), and a history that never leaves memory.
//
// The history is never written to a file: the lines typed into a session
// over encrypted data are queries that can hold the data itself (literals)
// or secrets, and a tool whose purpose is to keep data encrypted must not
// leave them in plaintext in a home directory.
package lineedit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"
)

// ErrInterrupted is returned by ReadLine when Ctrl-C was pressed: the line
// being typed is dropped.
var ErrInterrupted = errors.New("interrupted")

// MaxHistory is how many lines the history keeps.
const MaxHistory = 1000

// Editor reads lines from a terminal. ReadLine is called from one goroutine
// at a time; Close may be called from any.
type Editor struct {
	in   *os.File
	out  io.Writer
	t    *term.Terminal
	keys *keys
	hist *history

	mu     sync.Mutex // guards raw and closed
	raw    *term.State
	closed bool

	interrupted bool // set by the Ctrl-C key while a line is read
}

// New returns an editor that reads keys from in, a terminal, and echoes to
// out (the terminal too: standard error in ppml). It fails when in cannot
// be put in raw mode and back, e.g. inside a Gramine enclave, which does
// not pass terminal ioctls to the host unless its manifest allows them: the
// caller then reads lines as they come.
func New(in *os.File, out io.Writer) (*Editor, error) {
	st, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	if err := term.Restore(int(in.Fd()), st); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	e := &Editor{in: in, out: out, keys: &keys{r: in}, hist: &history{}}
	e.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{e.keys, out}, "")
	e.hist.skip = &e.interrupted
	e.t.History = e.hist
	e.t.AutoCompleteCallback = e.key
	return e, nil
}

// ReadLine shows prompt and returns the line typed, without its end. It
// returns ErrInterrupted on Ctrl-C and io.EOF on Ctrl-D at the start of a
// line or at the end of the input.
func (e *Editor) ReadLine(prompt string) (string, error) {
	if err := e.makeRaw(); err != nil {
		return "", err
	}
	defer e.restore()
	if f, ok := e.out.(*os.File); ok {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil {
			e.t.SetSize(w, h)
		}
	}
	e.t.SetPrompt(prompt)
	e.interrupted = false
	line, err := e.t.ReadLine()
	if e.interrupted {
		e.interrupted = false
		return "", ErrInterrupted
	}
	return line, err
}

// Close puts the terminal back as it was if a line is being read, and
// makes later reads fail. It is safe to call more than once.
func (e *Editor) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.raw == nil {
		return nil
	}
	err := term.Restore(int(e.in.Fd()), e.raw)
	e.raw = nil
	return err
}

func (e *Editor) makeRaw() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("line editor closed")
	}
	st, err := term.MakeRaw(int(e.in.Fd()))
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	e.raw = st
	return nil
}

func (e *Editor) restore() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.raw != nil {
		term.Restore(int(e.in.Fd()), e.raw)
		e.raw = nil
	}
}

// key is the Terminal's hook for keys it does not handle itself: keys
// turns Ctrl-C into interruptKey followed by Enter, so the line typed is
// shown with ^C, ended, and ReadLine reports the interruption.
func (e *Editor) key(line string, pos int, k rune) (string, int, bool) {
	if k != interruptKey {
		return "", 0, false
	}
	e.interrupted = true
	line += "^C"
	return line, len(line), true
}

// interruptKey stands for Ctrl-C inside the Terminal, which would otherwise
// end the input for good (it returns io.EOF for Ctrl-C and keeps returning
// it). It is Ctrl-_ (unit separator), which nothing else uses.
const interruptKey = 0x1f

// keys passes the terminal's bytes on, with each Ctrl-C replaced by
// interruptKey and Enter.
type keys struct {
	r       io.Reader
	buf     [256]byte
	pending []byte
}

func (k *keys) Read(p []byte) (int, error) {
	if len(k.pending) == 0 {
		n, err := k.r.Read(k.buf[:])
		if n == 0 {
			return 0, err
		}
		k.pending = k.pending[:0]
		for _, b := range k.buf[:n] {
			if b == 3 { // Ctrl-C
				k.pending = append(k.pending, interruptKey, '\r')
			} else {
				k.pending = append(k.pending, b)
			}
		}
	}
	n := copy(p, k.pending)
	k.pending = k.pending[n:]
	return n, nil
}

// history is the Terminal's history: the lines entered this session, most
// recent first, without empty lines, repeats of the line before, or lines
// dropped with Ctrl-C.
type history struct {
	lines []string // oldest first
	skip  *bool    // the line being added was dropped
}

func (h *history) Add(line string) {
	if *h.skip || line == "" || len(h.lines) > 0 && h.lines[len(h.lines)-1] == line {
		return
	}
	if len(h.lines) == MaxHistory {
		h.lines = append(h.lines[:0], h.lines[1:]...)
	}
	h.lines = append(h.lines, line)
}

func (h *history) Len() int { return len(h.lines) }

func (h *history) At(i int) string { return h.lines[len(h.lines)-1-i] }
