package stream

import (
	"encoding/json"
	"testing"
)

// TestAppendJSONString holds the result writer's string quoting to JSON:
// what it writes parses, to the text encoding/json reads from its own
// output (control characters escaped, bytes that are not UTF-8 replaced).
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "word", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f", "México ☃ 𝄞",
		"bad \xff byte", "cut \xe2\x98", "\u2028\u2029", "</script>&"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q written as %s: %v", s, b, err)
		}
		m, _ := json.Marshal(s)
		var want string
		json.Unmarshal(m, &want)
		if got != want {
			t.Errorf("%q written as %s reads %q, want %q", s, b, got, want)
		}
	}
}
