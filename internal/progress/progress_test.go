package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuietUnlessTerminalAndLarge(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b := New(f, "x", 1<<30, false); b != nil {
		t.Fatal("bar on a regular file")
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if b := New(w, "x", 1<<30, false); b != nil {
		t.Fatal("bar on a pipe")
	}
	// A nil bar is usable and passes data through untouched.
	var nb *Bar
	nb.Add(5)
	nb.Done()
	var buf bytes.Buffer
	io.Copy(nb.Writer(&buf), nb.Reader(strings.NewReader("data")))
	if buf.String() != "data" {
		t.Fatal("nil bar altered data")
	}
}

func TestRenderAndThrottle(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	b := newBar(&out, "encrypt big.csv", 200<<20, func() time.Time { return now })
	now = now.Add(time.Second)
	b.Add(100 << 20)
	first := out.String()
	if !strings.Contains(first, " 50% ") || !strings.Contains(first, "100.0 MiB/200.0 MiB") || !strings.Contains(first, "100.0 MiB/s") {
		t.Fatalf("line %q", first)
	}
	b.Add(1) // within 100 ms: no redraw
	if out.String() != first {
		t.Fatal("redrew within the interval")
	}
	now = now.Add(time.Second)
	b.Add(100<<20 - 1)
	b.Done()
	if !strings.Contains(out.String(), "100% [==============================]") || !strings.HasSuffix(out.String(), "\n") {
		t.Fatalf("final %q", out.String())
	}
	if got := Render("x", 0, 0, 0); !strings.Contains(got, "0%") {
		t.Fatalf("zero total: %q", got)
	}
	if Bytes(1023) != "1023 B" || Bytes(1<<30) != "1.0 GiB" {
		t.Fatal(Bytes(1 << 30))
	}
}
