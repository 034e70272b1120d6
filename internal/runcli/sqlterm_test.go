package runcli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
)

// TestSQLTerminal drives a real `ppml sql` session (ppml-run's command tree,
// in a process of its own) on a pseudo-terminal, as a person types: a
// query, Up to recall it and the cursor keys to edit it, a multi-line
// statement, Ctrl-C dropping a half-typed statement and stopping a running
// one, and Ctrl-D ending the session. Nothing is written to the home
// directory (no history file).
func TestSQLTerminal(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	k, err := keyfile.Generate(p("owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := envelope.CreateFile(p("people.json.ppml"), k.LocalKey, &envelope.Options{ContentType: envelope.TypeJSON}, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("{\"name\":\"Michael\"}\n{\"name\":\"Andy\", \"age\":30}\n{\"name\":\"Justin\", \"age\":19}\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)

	c := exec.Command(os.Args[0], "-test.run=^TestRunHelperProcess$")
	c.Env = append(os.Environ(), "HOME="+home, "PPML_SERVER=", "PPML_RUN_HELPER_ARGS="+strings.Join(
		[]string{"sql", "--input", "people=" + p("people.json.ppml"), "--key", p("owner.key"), "--csv"}, "\x1f"))
	ptm, err := pty.StartWithSize(c, &pty.Winsize{Rows: 24, Cols: 120})
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	defer c.Process.Kill()
	s := &screen{}
	go s.read(ptm)

	// expect waits for want in what the terminal showed after the last
	// match.
	expect := func(want string) {
		t.Helper()
		if !s.wait(want, 15*time.Second) {
			t.Fatalf("terminal never showed %q; it shows:\n%q", want, s.rest())
		}
	}
	typ := func(keys string) {
		t.Helper()
		if _, err := ptm.Write([]byte(keys)); err != nil {
			t.Fatal(err)
		}
	}
	const prompt, more = "ppml sql> ", "      ... "

	expect("1 table (people), decrypted in memory only")
	expect(prompt)
	typ("SELECT name FROM people WHERE age = 30;\r")
	expect("name\r\nAndy\r\n")
	expect(prompt)

	// Up recalls the query; Left moves before the ';', two backspaces and
	// two digits change the age in place.
	typ("\x1b[A")
	expect("SELECT name FROM people WHERE age = 30;")
	typ("\x1b[D\x7f\x7f19\r")
	expect("name\r\nJustin\r\n")
	expect(prompt)
	// Home (Ctrl-A) and insertion at the start of the line.
	typ("name FROM people WHERE age = 19;\x01SELECT \r")
	expect("name\r\nJustin\r\n")
	expect(prompt)

	// A statement over several lines, with the continuation prompt.
	typ("SELECT name\r")
	expect(more)
	typ("FROM people\r")
	expect(more)
	typ("WHERE age > 20;\r")
	expect("name\r\nAndy\r\n")
	expect(prompt)

	// Ctrl-C drops the statement being typed, its first line included: the
	// next one runs alone.
	typ("SELECT name\r")
	expect(more)
	typ("FROM nowhere\x03")
	expect("FROM nowhere^C\r\n" + prompt)
	typ("SELECT 42 AS answer;\r")
	expect("answer\r\n42\r\n")
	expect(prompt)

	// Ctrl-C while a statement runs stops it (the terminal is out of raw
	// mode then, so it is a signal) and the session goes on.
	typ("SELECT sum(a.range * b.range) FROM range(100000000) a, range(1000000) b;\r")
	waitCooked(t, ptm)
	typ("\x03")
	expect("^C\r\nError: interrupted (Ctrl-C); the session goes on\r\n")
	expect(prompt)
	typ("SELECT count(*) AS n FROM people;\r")
	expect("n\r\n3\r\n")
	expect(prompt)

	// Ctrl-D on an empty line ends the session.
	typ("\x04")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("ppml sql: %v; terminal:\n%q", err, s.all())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Ctrl-D did not end the session; terminal:\n%q", s.all())
	}
	// It ends the prompt's line, and says nothing else.
	s.wait("\x00never", 5*time.Second) // returns once the terminal is drained and closed
	if got := s.rest(); got != "\r\n" {
		t.Fatalf("after Ctrl-D the terminal shows %q", got)
	}
	if ents, _ := os.ReadDir(home); len(ents) != 0 {
		t.Fatalf("the session wrote to the home directory: %v", ents)
	}
}

// waitCooked waits until the terminal is back in canonical mode: the line
// has been read and the statement runs (the master end shares the
// terminal's settings).
func waitCooked(t *testing.T, ptm *os.File) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		tio, err := unix.IoctlGetTermios(int(ptm.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ICANON != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminal stayed in raw mode")
		}
	}
}

// screen collects what a terminal shows.
type screen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	mark int // end of the last match
	eof  bool
}

func (s *screen) read(f *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := f.Read(b)
		s.mu.Lock()
		s.buf.Write(b[:n])
		s.eof = err != nil
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// wait reports whether want appears after the mark within d, and moves
// the mark past it.
func (s *screen) wait(want string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		if i := strings.Index(s.buf.String()[s.mark:], want); i >= 0 {
			s.mark += i + len(want)
			s.mu.Unlock()
			return true
		}
		eof := s.eof
		s.mu.Unlock()
		if eof || time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *screen) rest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()[s.mark:]
}

func (s *screen) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
