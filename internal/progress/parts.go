package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Part is one part of a job whose size is known in items, such as a table
// and its rows.
type Part struct {
	Name  string
	Total int64 // items the part will have when complete
	// Weight is the relative cost of one item (e.g. its typical size in
	// bytes); the estimate of the time left weighs each part's items by it.
	// 0 counts as 1.
	Weight float64
	Unit   string // what an item is, e.g. "rows"
}

// Parts is a progress display for a job made of parts of known item counts
// (the tables of a TPC-H generation): the share done, the bytes written
// overall with their rate, an estimate of the time left, the parts complete
// and the parts under way with their items done and total. The estimate is
// the time spent so far scaled by the weighted share of items still to do,
// so it is as good as the item counts are (exact for TPC-H, whose row counts
// follow from the scale factor) and follows the measured speed, not a guess
// of it; it is shown from MinShare done. Once every item is done and parts
// are still being finished the line says so instead of sitting at 100%.
//
// Like a Bar it is drawn only on a terminal, only once the job is large or
// slow, and a nil *Parts is valid and draws nothing. Set and Add may be
// called from any goroutine.
type Parts struct {
	bar      *Bar
	label    string
	parts    []Part
	done     []atomic.Int64
	finished []atomic.Bool
	width    int // terminal columns; 0: unknown
	complete atomic.Bool
}

// NewParts returns a display on out, or nil when quiet is set or out is not a
// terminal.
func NewParts(out *os.File, label string, parts []Part, quiet bool) *Parts {
	b := New(out, label, -1, quiet)
	if b == nil {
		return nil
	}
	width, _, err := term.GetSize(int(out.Fd()))
	if err != nil {
		width = 0
	}
	return attachParts(b, label, parts, width)
}

func newParts(out io.Writer, label string, parts []Part, width int, now func() time.Time) *Parts {
	return attachParts(newBar(out, label, -1, now), label, parts, width)
}

func attachParts(b *Bar, label string, parts []Part, width int) *Parts {
	p := &Parts{bar: b, label: label, parts: parts, done: make([]atomic.Int64, len(parts)),
		finished: make([]atomic.Bool, len(parts)), width: width}
	b.mu.Lock()
	b.render = p.render
	b.mu.Unlock()
	return p
}

// Set records that part i has done items so far.
func (p *Parts) Set(i int, done int64) {
	if p == nil || i < 0 || i >= len(p.done) {
		return
	}
	p.done[i].Store(done)
}

// Finish records that part i is complete: all its items done and whatever
// follows them (a file closed and committed). A part whose items are all
// done is shown as under way until then.
func (p *Parts) Finish(i int) {
	if p == nil || i < 0 || i >= len(p.finished) {
		return
	}
	p.finished[i].Store(true)
}

// Add records n more bytes written.
func (p *Parts) Add(n int) {
	if p != nil {
		p.bar.Add(n)
	}
}

// Done draws the final state (the total time in place of the estimate) and
// ends the line.
func (p *Parts) Done() {
	if p != nil {
		p.complete.Store(true)
		p.bar.Done()
	}
}

// Clear erases the line, e.g. before printing an error.
func (p *Parts) Clear() {
	if p != nil {
		p.bar.Clear()
	}
}

// MinShare is the share of the job done before a time left is estimated: a
// first chunk that has barely started says nothing yet about the rest.
const MinShare = 0.01

// render draws: label, percentage, bytes, rate, the time left (or taken,
// once Done), the parts complete and the parts under way. The parts come
// last so that a narrow terminal loses them first.
func (p *Parts) render(bytes int64, elapsed time.Duration) string {
	var active []string
	finished := 0
	var doneW, totalW float64
	for i, pt := range p.parts {
		d := min(p.done[i].Load(), pt.Total)
		w := pt.Weight
		if w <= 0 {
			w = 1
		}
		doneW += float64(d) * w
		totalW += float64(pt.Total) * w
		switch {
		case p.finished[i].Load():
			finished++
		case d > 0:
			s := fmt.Sprintf("%s %s/%s", pt.Name, Count(d), Count(pt.Total))
			if pt.Unit != "" {
				s += " " + pt.Unit
			}
			active = append(active, s)
		}
	}
	frac := 1.0
	if totalW > 0 {
		frac = doneW / totalW
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %3d%%  %s%s", p.label, int(frac*100), Bytes(bytes), rate(bytes, elapsed))
	switch {
	case p.complete.Load():
		sb.WriteString("  in " + Duration(elapsed))
	case frac >= 1:
		sb.WriteString("  finishing") // every item made, the last parts are being closed
	case frac >= MinShare:
		sb.WriteString("  ETA " + Duration(time.Duration(float64(elapsed)*(1-frac)/frac)))
	}
	fmt.Fprintf(&sb, "  %d/%d done", finished, len(p.parts))
	for _, a := range active {
		sb.WriteString("  " + a)
	}
	s := sb.String()
	if p.width > 1 && len(s) > p.width-1 {
		s = s[:p.width-1] // a wrapped line could not be redrawn in place
	}
	return s
}

// Count formats an item count compactly: 950, 12.5k, 6.0M, 1.2G.
func Count(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fG", float64(n)/1e9)
}

// Duration formats a time left or taken to the second: 45s, 3m07s, 2h05m.
func Duration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}
