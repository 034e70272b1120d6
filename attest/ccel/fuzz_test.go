package ccel

import (
	"bytes"
	"testing"
)

// FuzzParse feeds the parser arbitrary logs seeded with the real ones (cut
// at their end, to keep inputs small) and checks what a successful parse
// promises: events inside the input, replay and descriptions that do not
// panic, and the same result when the log is re-parsed from its own length.
func FuzzParse(f *testing.F) {
	for _, c := range realLogs {
		b := readLog(f, c.file)
		l, err := Parse(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:l.Length])
	}
	sha384 := Algorithm{AlgSHA384, 48}
	f.Add(append(spec(sha384, Algorithm{AlgSHA256, 32}), event(2, EvIPL, sha384Of("a"), []byte("kernel_cmdline: ro\x00"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		if l.Length > len(b) {
			t.Fatalf("length %d beyond input %d", l.Length, len(b))
		}
		for i := range l.Events {
			e := &l.Events[i]
			if e.Offset < 0 || e.Offset >= l.Length {
				t.Fatalf("event %d at offset %d outside the log (%d)", i, e.Offset, l.Length)
			}
			if d := e.Describe(); len(d) > maxDescription+len("…") || !printable(d) {
				t.Fatalf("description %q", d)
			}
			e.DataIsDigested()
		}
		mr := l.Replay()
		l2, err := Parse(bytes.Clone(b[:l.Length]))
		if err != nil || len(l2.Events) != len(l.Events) || l2.Replay() != mr {
			t.Fatalf("re-parse of the log's own %d bytes: %v", l.Length, err)
		}
	})
}
