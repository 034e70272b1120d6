package tunnel

import (
	"bytes"
	"testing"
)

// FuzzReadTarget parses arbitrary stream headers: an accepted name is a
// valid target name.
func FuzzReadTarget(f *testing.F) {
	f.Add([]byte("\x05rabit"))
	f.Add([]byte("\x07tracker"))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := readTarget(bytes.NewReader(b))
		if err != nil {
			return
		}
		if CheckTarget(name) != nil || int(b[0]) != len(name) {
			t.Fatalf("accepted %q", name)
		}
	})
}
