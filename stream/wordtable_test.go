package stream

import (
	"fmt"
	"testing"
)

// TestWordTableTagCollision finds long words that share their first 8
// bytes, their length and the 16 bits of hash a slot keeps, so that only
// the comparison with the key's bytes tells them apart, and checks that
// each finds its own id, also after the table grows.
func TestWordTableTagCollision(t *testing.T) {
	tags := map[[2]uint64]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		w := fmt.Sprintf("abcdefgh%06d", i)
		bw := []byte(w)
		pre := load(bw, 0, 8)
		h := hashWord(bw, 0, len(bw), pre)
		k := [2]uint64{h >> 48, uint64(h) & 255} // same tag, same first slot of a 256-slot table
		if o, ok := tags[k]; ok {
			a, b = o, w
		}
		tags[k] = w
		if i > 1e7 {
			t.Fatal("no collision found")
		}
	}
	var tab wordTable
	var keys []string
	add := func(w string) int32 {
		bw := []byte(w)
		id, h, pre, ok := tab.find(bw, 0, len(bw), keys)
		if ok {
			return id
		}
		keys = append(keys, "\x01"+w) // a key ends with its word
		tab.insert(h, pre, len(bw), int32(len(keys)-1), keys)
		return int32(len(keys) - 1)
	}
	ia, ib := add(a), add(b)
	if ia == ib {
		t.Fatalf("%q and %q share id %d", a, b, ia)
	}
	for i := 0; i < 1000; i++ { // grow the table several times
		add(fmt.Sprintf("w%d", i))
	}
	upper := []byte("ABCDEFGH" + a[8:])
	if id, _, _, ok := tab.find(upper, 0, len(upper), keys); !ok || id != ia {
		t.Errorf("%q: id %d, %v; want %d", upper, id, ok, ia)
	}
	if id, _, _, ok := tab.find([]byte(b), 0, len(b), keys); !ok || id != ib {
		t.Errorf("%q: id %d, %v; want %d", b, id, ok, ib)
	}
	if got := add(a); got != ia {
		t.Errorf("%q again: id %d, want %d", a, got, ia)
	}
}

// TestLoadFoldsAndPads checks load at the end of a slice (byte by byte)
// and inside it (one 8-byte load) against the same bytes.
func TestLoadFoldsAndPads(t *testing.T) {
	b := []byte("xxAbC'9Zq")
	for i := 0; i < len(b); i++ {
		for n := 1; n <= min(8, len(b)-i); n++ {
			var want uint64
			for k := n - 1; k >= 0; k-- {
				want = want<<8 | uint64(b[i+k]|0x20)
			}
			if got := load(b, i, n); got != want {
				t.Errorf("load(%q, %d, %d) = %#x, want %#x", b, i, n, got, want)
			}
			if got := load(b[:i+n], i, n); got != want {
				t.Errorf("load at the end (%q, %d, %d) = %#x, want %#x", b[:i+n], i, n, got, want)
			}
		}
	}
}
