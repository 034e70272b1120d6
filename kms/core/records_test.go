package core

import "testing"

// FuzzUnwrapDataKey feeds arbitrary wrapped keys and associated data to
// the unwrapping owners and releases use.
func FuzzUnwrapDataKey(f *testing.F) {
	m := make([]byte, 32)
	k := &keyRec{Name: "k", Versions: []keyVersionRec{{Version: 1, Material: m}}}
	_, w, _, _ := wrapDataKey(k, []byte("aad"))
	f.Add(w, []byte("aad"))
	f.Fuzz(func(t *testing.T, w, aad []byte) {
		if dk, _, err := unwrapDataKey(k, w, aad); err == nil && len(dk) != 32 {
			t.Fatal("bad data key size")
		}
	})
}
