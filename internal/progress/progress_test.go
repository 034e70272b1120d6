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

// TestParts: a job of parts with known item counts (TPC-H tables and their
// rows) shows the share done, bytes and rate, an estimate of the time left
// from the weighted share still to do, the parts complete, and the parts
// under way with their own counts (not the total paired with the current
// part's name).
func TestParts(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{time.Unix(0, 0)}
	parts := []Part{
		{Name: "nation", Total: 25, Weight: 128, Unit: "rows"},
		{Name: "orders", Total: 1_500_000, Weight: 100, Unit: "rows"},
		{Name: "lineitem", Total: 6_000_000, Weight: 100, Unit: "rows"},
	}
	p := newParts(&out, "tpch SF 1", parts, 0, clk.now)
	p.Set(0, 25)
	p.Finish(0)
	p.Add(1 << 20)
	p.bar.redraw()
	if out.Len() != 0 {
		t.Fatalf("drew a short, small job: %q", out.String())
	}
	// Slow, but under MinShare done: no estimate yet.
	clk.advance(2 * time.Second)
	p.Set(1, 1000)
	p.bar.redraw()
	if line := out.String(); !strings.Contains(line, "tpch SF 1   0%  1.0 MiB  512.0 KiB/s  1/3 done  orders 1.0k/1.5M rows") || strings.Contains(line, "ETA") {
		t.Fatalf("early line %q", line)
	}
	// Two seconds in, a fifth of the weighted rows is done: 8 s to go.
	out.Reset()
	p.Set(1, 300_000)
	p.Set(2, 1_200_000)
	p.Add(99 << 20)
	p.bar.redraw()
	if line := out.String(); line != "\r\033[Ktpch SF 1  20%  100.0 MiB  50.0 MiB/s  ETA 8s  1/3 done  orders 300.0k/1.5M rows  lineitem 1.2M/6.0M rows" {
		t.Fatalf("line %q", line)
	}
	// Nothing moves: the rate falls and the estimate grows with the time
	// spent, it does not freeze.
	out.Reset()
	clk.advance(2 * time.Second)
	p.bar.redraw()
	if line := out.String(); !strings.Contains(line, "25.0 MiB/s  ETA 16s") {
		t.Fatalf("stalled line %q", line)
	}
	// Every row made, the files still being finished: said so, with the
	// parts still listed, rather than a bare 100%.
	out.Reset()
	p.Set(1, 1_500_000)
	p.Set(2, 6_000_000)
	p.bar.redraw()
	if line := out.String(); !strings.Contains(line, "100%  100.0 MiB  25.0 MiB/s  finishing  1/3 done  orders 1.5M/1.5M rows") {
		t.Fatalf("finishing line %q", line)
	}
	// Done: the time taken in place of the estimate, and the line ended.
	out.Reset()
	p.Finish(1)
	p.Finish(2)
	clk.advance(6 * time.Second)
	p.Done()
	if line := out.String(); line != "\r\033[Ktpch SF 1 100%  100.0 MiB  10.0 MiB/s  in 10s  3/3 done\n" {
		t.Fatalf("final line %q", line)
	}
	n := out.Len()
	p.Set(0, 1)
	p.bar.redraw()
	p.Clear()
	if out.Len() != n {
		t.Fatal("drew after Done")
	}

	// The line is cut to the terminal's width (a wrapped line cannot be
	// redrawn in place), the parts under way first.
	out.Reset()
	p = newParts(&out, "tpch SF 1", parts, 40, clk.now)
	p.Set(1, 1)
	p.Add(Threshold)
	p.bar.redraw()
	if got := strings.TrimPrefix(out.String(), "\r\033[K"); got != "tpch SF 1   0%  64.0 MiB  0/3 done  ord" {
		t.Fatalf("on a 40-column terminal: %q", got)
	}

	// Quiet: nothing on a pipe, and a nil display is usable.
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if p := NewParts(w, "x", parts, false); p != nil {
		t.Fatal("display on a pipe")
	}
	var np *Parts
	np.Set(0, 1)
	np.Finish(0)
	np.Add(1)
	np.Done()
	np.Clear()
	if Count(950) != "950" || Count(12_500) != "12.5k" || Duration(187*time.Second) != "3m07s" || Duration(7500*time.Second) != "2h05m" {
		t.Fatal(Count(950), Count(12_500), Duration(187*time.Second), Duration(7500*time.Second))
	}
}
