package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
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

// fakeClock drives a bar without a ticker: redraw is what the ticker calls.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestKnownSize(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{time.Unix(0, 0)}
	b := newBar(&out, "encrypt big.csv", 200<<20, clk.now)
	clk.advance(time.Second)
	b.Add(100 << 20)
	b.redraw()
	first := out.String()
	if !strings.Contains(first, " 50% ") || !strings.Contains(first, "100.0 MiB/200.0 MiB") || !strings.Contains(first, "100.0 MiB/s") {
		t.Fatalf("line %q", first)
	}
	// Nothing moves for a second: the rate shown falls, it does not freeze.
	clk.advance(time.Second)
	b.redraw()
	if !strings.HasSuffix(out.String(), "50.0 MiB/s") {
		t.Fatalf("stalled line %q", out.String())
	}
	b.Add(100 << 20)
	b.Done()
	if !strings.Contains(out.String(), "100% [==============================]") || !strings.HasSuffix(out.String(), "\n") {
		t.Fatalf("final %q", out.String())
	}
	n := out.Len()
	b.redraw()
	b.Done()
	b.Clear()
	if out.Len() != n {
		t.Fatal("drew after Done")
	}
	if got := Render("x", 0, 0, 0); !strings.Contains(got, "0%") {
		t.Fatalf("zero total: %q", got)
	}
	if Bytes(1023) != "1023 B" || Bytes(1<<30) != "1.0 GiB" {
		t.Fatal(Bytes(1 << 30))
	}
}

// TestUnknownSize: input from a pipe shows bytes and rate, without a
// percentage, once it is large or slow; a short one shows nothing.
func TestUnknownSize(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{time.Unix(0, 0)}
	b := newBar(&out, "encrypt stdin", -1, clk.now)
	clk.advance(100 * time.Millisecond)
	b.Add(1 << 20)
	b.redraw()
	if out.Len() != 0 {
		t.Fatalf("drew a short, small job: %q", out.String())
	}
	clk.advance(Delay)
	b.redraw()
	line := out.String()
	if !strings.Contains(line, "encrypt stdin 1.0 MiB") || !strings.Contains(line, "/s") || strings.Contains(line, "%") {
		t.Fatalf("slow job: %q", line)
	}
	// Large but fast: shown at once.
	out.Reset()
	b = newBar(&out, "encrypt stdin", -1, clk.now)
	b.Add(Threshold)
	b.redraw()
	if !strings.Contains(out.String(), "64.0 MiB") {
		t.Fatalf("large job: %q", out.String())
	}
	// A small, fast job that ends shows nothing, not even a newline.
	out.Reset()
	b = newBar(&out, "encrypt stdin", -1, clk.now)
	b.Add(10)
	b.Done()
	if out.Len() != 0 {
		t.Fatalf("small job: %q", out.String())
	}
}

// TestSyncPhase: after the bytes, a phase with no byte count (the sync) gets
// its own line with its elapsed time, instead of the bar sitting at 99%.
func TestSyncPhase(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{time.Unix(0, 0)}
	b := newBar(&out, "decrypt big.csv.ppml", 100<<20, clk.now)
	clk.advance(time.Second)
	b.Add(100 << 20)
	b.Phase("sync big.csv to disk")
	clk.advance(2500 * time.Millisecond)
	b.redraw()
	b.Done()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the byte line and the phase line: %q", out.String())
	}
	if !strings.Contains(lines[0], "100% [") || !strings.Contains(lines[0], "100.0 MiB/s") {
		t.Fatalf("byte line %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], "sync big.csv to disk  2.5s") {
		t.Fatalf("phase line %q", lines[1])
	}
	// A job too small to show: its phase is not shown either.
	out.Reset()
	b = newBar(&out, "encrypt stdin", -1, clk.now)
	b.Add(10)
	b.Phase("sync x to disk")
	clk.advance(5 * time.Second)
	b.redraw()
	b.Done()
	if out.Len() != 0 {
		t.Fatalf("small job's phase: %q", out.String())
	}
}

// TestConcurrentAdd: workers add from several goroutines while the ticker
// draws (run with -race).
func TestConcurrentAdd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go io.Copy(io.Discard, r)
	b := &Bar{out: w, label: "x", total: 1 << 30, now: time.Now, start: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.tick()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				b.Add(1)
			}
		}()
	}
	wg.Wait()
	b.Done()
	w.Close()
	if b.done.Load() != 4000 {
		t.Fatal(b.done.Load())
	}
}
