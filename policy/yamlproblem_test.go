package policy

import (
	"strings"
	"testing"
)

// Errors name the document's fields and kinds of value, never Go types.
func TestParseErrorsNameNoGoTypes(t *testing.T) {
	for doc, want := range map[string]string{
		"version: 1\nbogus: 2\n": "unknown field bogus",
		"version: x\n":           "`x` is a string where a number is expected",
		"version: 1\nplatforms:\n  sim:\n    signers: abc\n": "where a list is expected",
		"- 1\n- 2\n": "is a list where a mapping is expected",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
			continue
		}
		for _, goish := range []string{"policy.", "[]string", "uint32", "in type", "!!"} {
			if strings.Contains(err.Error(), goish) {
				t.Errorf("%q: %v names %q", doc, err, goish)
			}
		}
	}
}
