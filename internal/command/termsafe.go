package command

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// TermSafe returns s with every character that can act on a terminal
// written as a Go escape: C0 and C1 controls and DEL (ESC starts colour,
// cursor and title sequences; CR and LF rewrite or fake lines), Unicode
// line and paragraph separators and bidirectional overrides (which reorder
// what is shown), and bytes that are not UTF-8. Text that comes from a key
// service, an audit log or a runner is printed through it, so that a
// crafted key reference or reason cannot forge output. keep lists
// characters left as they are (e.g. "\n" for the CLI's own multi-line
// messages).
func TermSafe(s, keep string) string {
	if safe(s, keep) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i]), 16))
		case strings.ContainsRune(keep, r) || !unsafeRune(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func safe(s, keep string) bool {
	for _, r := range s {
		if (unsafeRune(r) || r == utf8.RuneError) && !strings.ContainsRune(keep, r) {
			return false
		}
	}
	return true
}

func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r == 0x2028, r == 0x2029, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
