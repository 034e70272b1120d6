package stream

import (
	"fmt"
	"math"
	"time"
)

// Window is a half-open interval [Start, End) of event time in Unix
// milliseconds. Its last instant, End-1, is Flink's maxTimestamp: the
// window fires when the watermark reaches it.
type Window struct{ Start, End int64 }

func (w Window) maxTs() int64 { return w.End - 1 }

func (w Window) String() string {
	return fmt.Sprintf("[%s, %s)", fmtMillis(w.Start), fmtMillis(w.End))
}

func fmtMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// WindowKind names a window function.
type WindowKind string

// Window kinds.
const (
	TumblingKind WindowKind = "tumbling"
	SlidingKind  WindowKind = "sliding"
	SessionKind  WindowKind = "session"
)

// WindowFn assigns event times to windows, as Flink's window assigners.
type WindowFn struct {
	Kind WindowKind
	Size time.Duration // tumbling, sliding
	// Slide is how far successive sliding windows start apart; it must
	// divide Size.
	Slide time.Duration
	Gap   time.Duration // session: a key's session closes after this much event time without events
}

// TumblingWindows returns fixed windows of the given size, aligned to the
// Unix epoch.
func TumblingWindows(size time.Duration) WindowFn {
	return WindowFn{Kind: TumblingKind, Size: size, Slide: size}
}

// SlidingWindows returns windows of size starting every slide.
func SlidingWindows(size, slide time.Duration) WindowFn {
	return WindowFn{Kind: SlidingKind, Size: size, Slide: slide}
}

// SessionWindows returns per-key sessions separated by gaps of inactivity.
func SessionWindows(gap time.Duration) WindowFn { return WindowFn{Kind: SessionKind, Gap: gap} }

func (f WindowFn) check() error {
	ms := func(d time.Duration) bool { return d >= time.Millisecond && d%time.Millisecond == 0 }
	switch f.Kind {
	case TumblingKind, SlidingKind:
		if !ms(f.Size) || !ms(f.Slide) {
			return fmt.Errorf("window size and slide must be whole milliseconds, at least 1ms")
		}
		if f.Size%f.Slide != 0 {
			return fmt.Errorf("window size %v is not a multiple of the slide %v", f.Size, f.Slide)
		}
		if f.Size/f.Slide > 1000 {
			return fmt.Errorf("window size %v over slide %v puts each event in more than 1000 windows", f.Size, f.Slide)
		}
	case SessionKind:
		if !ms(f.Gap) {
			return fmt.Errorf("session gap must be whole milliseconds, at least 1ms")
		}
	default:
		return fmt.Errorf("unknown window kind %q", f.Kind)
	}
	return nil
}

// assign appends the windows of event time t.
func (f WindowFn) assign(t int64, dst []Window) []Window {
	switch f.Kind {
	case SessionKind:
		return append(dst, Window{t, t + f.Gap.Milliseconds()})
	}
	size, slide := f.Size.Milliseconds(), f.Slide.Milliseconds()
	last := floorDiv(t, slide) * slide
	for start := last; start > t-size; start -= slide {
		dst = append(dst, Window{start, start + size})
	}
	return dst
}

// boundary is a number that changes whenever the watermark passes the
// last instant of a window (when it fires) or that instant plus the
// allowed lateness (when it is purged and later data is late): for
// tumbling and sliding windows the window tasks then decide exactly as
// they would knowing every watermark. For sessions, whose ends fall
// anywhere, it changes every half gap (and source tasks also send their
// watermark whenever they close a session).
func (f WindowFn) boundary(wm int64, lateness time.Duration) [2]int64 {
	if wm == math.MinInt64 || wm == math.MaxInt64 {
		return [2]int64{wm, wm}
	}
	switch f.Kind {
	case SessionKind:
		return [2]int64{floorDiv(wm, max(f.Gap.Milliseconds()/2, 1)), 0}
	}
	size, slide := f.Size.Milliseconds(), f.Slide.Milliseconds()
	return [2]int64{floorDiv(wm+1-size, slide), floorDiv(wm+1-size-lateness.Milliseconds(), slide)}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// merge reports whether two session windows overlap or touch and returns
// their union.
func mergeable(a, b Window) bool { return a.Start <= b.End && b.Start <= a.End }

func union(a, b Window) Window {
	return Window{min(a.Start, b.Start), max(a.End, b.End)}
}
