package stream

import "unsafe"

// strArena hands out strings whose bytes live in append-only chunks: a
// byte is never written again once handed out (a full chunk is left to
// the garbage collector, not reused), so the strings stay as immutable
// as Go promises. It saves an allocation per string for the many short
// keys and words of a task; every string it holds keeps its chunk alive,
// so a holder whose strings die together (a window's keys) or soon (a
// record's words) uses one, and one that drops strings one by one (a
// session window's keys) does not.
type strArena struct{ b []byte }

// Chunks grow from arenaFirstChunk to arenaChunk, so a holder of a few
// strings does not pay for a full chunk.
const (
	arenaFirstChunk = 256
	arenaChunk      = 16 << 10
)

// alloc returns n fresh bytes for the caller to fill before it hands
// them out.
func (a *strArena) alloc(n int) []byte {
	if cap(a.b)-len(a.b) < n {
		a.b = make([]byte, 0, max(min(2*cap(a.b), arenaChunk), arenaFirstChunk, n))
	}
	start := len(a.b)
	a.b = a.b[:start+n]
	return a.b[start : start+n : start+n]
}

// clone returns a copy of s in the arena.
func (a *strArena) clone(s string) string {
	if s == "" {
		return ""
	}
	b := a.alloc(len(s))
	copy(b, s)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// lower returns s with ASCII capitals lower-cased, in the arena.
func (a *strArena) lower(s string) string {
	if s == "" {
		return ""
	}
	b := a.alloc(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
