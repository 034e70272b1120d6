// Package progress draws a one-line progress bar on a terminal for long
// copies. It stays silent unless the output is a terminal and the job is
// large, so scripts and pipes never see it.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// Threshold is the smallest size that gets a bar.
const Threshold = 64 << 20

const interval = 100 * time.Millisecond

// Bar is a progress bar. A nil *Bar is valid and draws nothing.
type Bar struct {
	out   io.Writer
	label string
	total int64
	done  int64
	start time.Time
	last  time.Time
	now   func() time.Time
}

// New returns a bar on out for total bytes, or nil when quiet is set, out is
// not a terminal, or total is below Threshold (including unknown, < 0).
func New(out *os.File, label string, total int64, quiet bool) *Bar {
	if quiet || out == nil || total < Threshold || !term.IsTerminal(int(out.Fd())) {
		return nil
	}
	return newBar(out, label, total, time.Now)
}

func newBar(out io.Writer, label string, total int64, now func() time.Time) *Bar {
	t := now()
	return &Bar{out: out, label: label, total: total, start: t, now: now}
}

// Add records n more bytes and redraws at most every 100 ms.
func (b *Bar) Add(n int) {
	if b == nil {
		return
	}
	b.done += int64(n)
	if t := b.now(); t.Sub(b.last) >= interval {
		b.last = t
		b.draw(t)
	}
}

// Done draws the final state and ends the line.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.draw(b.now())
	fmt.Fprintln(b.out)
}

// Clear erases the bar, e.g. before printing an error.
func (b *Bar) Clear() {
	if b == nil {
		return
	}
	fmt.Fprint(b.out, "\r\033[K")
}

func (b *Bar) draw(t time.Time) {
	fmt.Fprint(b.out, "\r\033[K"+Render(b.label, b.done, b.total, t.Sub(b.start)))
}

// Render formats one line: label, percentage, bar, sizes and rate.
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
	rate := ""
	if s := elapsed.Seconds(); s > 0 {
		rate = "  " + Bytes(int64(float64(done)/s)) + "/s"
	}
	return fmt.Sprintf("%s %3d%% [%s] %s/%s%s", label, int(frac*100), bar, Bytes(done), Bytes(total), rate)
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
