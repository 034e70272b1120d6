package command

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// An error quoting a server's text (here a denial reason carrying a
// terminal title sequence and a fake line) is printed escaped, with the
// CLI's own newlines and tabs kept.
func TestExitCodeEscapesWhatErrorsQuote(t *testing.T) {
	reason := "policy says no\x1b]0;owned\x07\rkey released\u202e"
	err := fmt.Errorf("keys denied, the job does not run:\n\tkey data: rule job: %s", reason)
	var out bytes.Buffer
	if code := ExitCode(err, "ppml-run", &out); code != ExitFailure {
		t.Fatalf("exit code %d, want %d", code, ExitFailure)
	}
	got := out.String()
	want := "ppml-run: keys denied, the job does not run:\n\tkey data: rule job: policy says no\\x1b]0;owned\\a\\rkey released\\u202e\n"
	if got != want {
		t.Fatalf("printed %q\nwant    %q", got, want)
	}
	if strings.ContainsAny(got, "\x1b\x07\r\u202e") {
		t.Fatalf("a control character reached the terminal: %q", got)
	}
	// Usage errors keep their exit code through the escaping.
	if code := ExitCode(&UsageError{Err: errors.New("bad \x1b flag")}, "ppml", &out); code != ExitUsage {
		t.Fatalf("usage error: exit code %d, want %d", code, ExitUsage)
	}
}

// FuzzTermSafe: whatever the input, the output is UTF-8 and holds no
// character that can act on a terminal, except those kept.
func FuzzTermSafe(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[2J\n", "bad \xff\xfe", "\u202e\u2028\u0085", "tab\tnew\nline"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []string{"", "\n\t"} {
			out := TermSafe(s, keep)
			if !utf8.ValidString(out) {
				t.Fatalf("%q -> invalid UTF-8 %q", s, out)
			}
			for _, r := range out {
				if unsafeRune(r) && !strings.ContainsRune(keep, r) {
					t.Fatalf("%q -> %q still holds %U", s, out, r)
				}
			}
		}
	})
}
