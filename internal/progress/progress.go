// Package progress draws a one-line progress display on a terminal for long
// copies: percentage, bytes and rate when the size is known, bytes and rate
// when it is not (a pipe), and phases without a byte count (a final sync)
// with their elapsed time. It stays silent unless the output is a terminal
// and the job is large or slow, so scripts and pipes never see it.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Threshold is the smallest known size that gets a bar. A job of unknown
// size is shown once it has passed Threshold bytes or run for Delay.
const Threshold = 64 << 20

// Delay is how long a job of unknown size runs before it is shown. It is a
// variable so that tests of commands can see their progress without a slow
// job; nothing else changes it.
var Delay = time.Second

const interval = 100 * time.Millisecond

// Bar is a progress display. A nil *Bar is valid and draws nothing. Add
// and the wrappers may be used from several goroutines at once; a
// background ticker redraws, so the rate stays truthful while nothing moves.
type Bar struct {
	out  io.Writer
	now  func() time.Time
	done atomic.Int64

	mu         sync.Mutex // guards what follows and the output
	label      string
	total      int64 // < 0: unknown
	start      time.Time
	phase      string // a phase without a byte count, e.g. "sync out.csv"
	phaseStart time.Time
	shown      bool // the current line has been drawn
	finished   bool
	// render, when set, draws the line of a job of unknown byte total in
	// place of RenderUnknown (a Parts display); it is called with mu held.
	render  func(done int64, elapsed time.Duration) string
	stop    chan struct{}
	stopped chan struct{}
}

// New returns a bar on out for total bytes (< 0: unknown), or nil when quiet
// is set, out is not a terminal, or total is known and below Threshold.
func New(out *os.File, label string, total int64, quiet bool) *Bar {
	if quiet || out == nil || total >= 0 && total < Threshold || !term.IsTerminal(int(out.Fd())) {
		return nil
	}
	b := newBar(out, label, total, time.Now)
	b.stop, b.stopped = make(chan struct{}), make(chan struct{})
	go b.tick()
	return b
}

func newBar(out io.Writer, label string, total int64, now func() time.Time) *Bar {
	return &Bar{out: out, label: label, total: total, start: now(), now: now}
}

func (b *Bar) tick() {
	defer close(b.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.redraw()
		}
	}
}

// Add records n more bytes.
func (b *Bar) Add(n int) {
	if b == nil {
		return
	}
	b.done.Add(int64(n))
}

// redraw draws the current line if the rules say it should be visible.
func (b *Bar) redraw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	line, ok := b.line(b.now())
	if !ok {
		return
	}
	fmt.Fprint(b.out, "\r\033[K"+line)
	b.shown = true
}

// line is the text to draw at t, and whether to draw it at all: a job of
// unknown size stays hidden until it is large or slow.
func (b *Bar) line(t time.Time) (string, bool) {
	if b.phase != "" {
		return RenderPhase(b.phase, t.Sub(b.phaseStart)), true
	}
	done, elapsed := b.done.Load(), t.Sub(b.start)
	if b.total < 0 {
		if !b.shown && done < Threshold && elapsed < Delay {
			return "", false
		}
		if b.render != nil {
			return b.render(done, elapsed), true
		}
		return RenderUnknown(b.label, done, elapsed), true
	}
	return Render(b.label, done, b.total, elapsed), true
}

// Phase ends the byte-counting part (its final state stays on its own
// line, if it was shown) and shows label with the time spent in it: a step
// whose length cannot be measured in bytes, such as syncing the output to
// disk. It is shown only if the byte-counting part was.
func (b *Bar) Phase(label string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished || b.phase != "" {
		return
	}
	t := b.now()
	if line, ok := b.line(t); ok {
		fmt.Fprint(b.out, "\r\033[K"+line+"\n")
		b.shown = true
	}
	if !b.shown {
		b.finished = true // a short job: show nothing of it
		b.stopTicker()
		return
	}
	b.phase, b.phaseStart = label, t
}

// Done draws the final state and ends the line.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	b.stopTicker()
	if line, ok := b.line(b.now()); ok {
		fmt.Fprint(b.out, "\r\033[K"+line+"\n")
	}
}

// Clear erases the current line, e.g. before printing an error.
func (b *Bar) Clear() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	b.stopTicker()
	if b.shown {
		fmt.Fprint(b.out, "\r\033[K")
	}
}

// stopTicker ends the ticker goroutine; b.mu is held, and the ticker takes
// it only in redraw, so it is released while waiting.
func (b *Bar) stopTicker() {
	if b.stop == nil {
		return
	}
	close(b.stop)
	b.mu.Unlock()
	<-b.stopped
	b.mu.Lock()
	b.stop = nil
}

// Render formats a line for a known total: label, percentage, bar, sizes
// and rate.
func Render(label string, done, total int64, elapsed time.Duration) string {
	frac := 0.0
	if total > 0 {
		frac = min(1, float64(done)/float64(total))
	}
	const width = 30
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if filled < width && filled > 0 {
		bar = strings.Repeat("=", filled-1) + ">" + strings.Repeat(" ", width-filled)
	}
	return fmt.Sprintf("%s %3d%% [%s] %s/%s%s", label, int(frac*100), bar, Bytes(done), Bytes(total), rate(done, elapsed))
}

// RenderUnknown formats a line for an unknown total: label, bytes so far
// and rate.
func RenderUnknown(label string, done int64, elapsed time.Duration) string {
	return fmt.Sprintf("%s %s%s", label, Bytes(done), rate(done, elapsed))
}

// RenderPhase formats a phase without a byte count: label and elapsed time.
func RenderPhase(label string, elapsed time.Duration) string {
	return fmt.Sprintf("%s  %.1fs", label, elapsed.Seconds())
}

func rate(done int64, elapsed time.Duration) string {
	if s := elapsed.Seconds(); s > 0 {
		return "  " + Bytes(int64(float64(done)/s)) + "/s"
	}
	return ""
}

// Bytes formats a size with binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Writer counts bytes written through to w on the bar.
func (b *Bar) Writer(w io.Writer) io.Writer {
	if b == nil {
		return w
	}
	return &countWriter{w, b}
}

// Reader counts bytes read from r on the bar.
func (b *Bar) Reader(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	return &countReader{r, b}
}

// ReaderAt counts bytes read from r on the bar (safe for concurrent use if
// r is).
func (b *Bar) ReaderAt(r io.ReaderAt) io.ReaderAt {
	if b == nil {
		return r
	}
	return &countReaderAt{r, b}
}

// WriterAt counts bytes written through to w on the bar (safe for
// concurrent use if w is).
func (b *Bar) WriterAt(w io.WriterAt) io.WriterAt {
	if b == nil {
		return w
	}
	return &countWriterAt{w, b}
}

type countWriter struct {
	w io.Writer
	b *Bar
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.b.Add(n)
	return n, err
}

type countReader struct {
	r io.Reader
	b *Bar
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.b.Add(n)
	return n, err
}

type countReaderAt struct {
	r io.ReaderAt
	b *Bar
}

func (c *countReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.b.Add(n)
	return n, err
}

type countWriterAt struct {
	w io.WriterAt
	b *Bar
}

func (c *countWriterAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.w.WriteAt(p, off)
	c.b.Add(n)
	return n, err
}
