package idx

import (
	"bytes"
	"testing"
)

// FuzzOpen: any bytes give an Array whose every item reads, or an error.
func FuzzOpen(f *testing.F) {
	f.Add(file(3, 2, 2))
	f.Add(file(10))
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if a.Items() == 0 {
			return
		}
		item := make([]byte, a.ItemSize())
		for i := range min(a.Items(), 64) {
			if err := a.Read(i, item); err != nil {
				t.Fatalf("item %d: %v", i, err)
			}
		}
	})
}

// FuzzGunzip: any bytes inflate to a valid IDX file within the limit, or fail.
func FuzzGunzip(f *testing.F) {
	f.Add(gz(file(3, 2, 2)))
	f.Add(gz(file(4)))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Gunzip(bytes.NewReader(b), 1<<20)
		if err != nil {
			return
		}
		if _, err := Open(bytes.NewReader(out), int64(len(out))); err != nil {
			t.Fatalf("Gunzip returned an invalid file: %v", err)
		}
	})
}
