package bech32

import (
	"bytes"
	"strings"
	"testing"
)

// The valid Bech32m strings of BIP 350's test vectors.
var bip350Valid = []string{
	"A1LQFN3A",
	"a1lqfn3a",
	"an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
	"abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
	"11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
	"split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
	"?1v759aa",
}

func TestBIP350Checksums(t *testing.T) {
	for _, s := range bip350Valid {
		sep := strings.LastIndexByte(s, '1')
		values := []byte{}
		for _, c := range strings.ToLower(s[sep+1:]) {
			values = append(values, byte(strings.IndexRune(charset, c)))
		}
		if polymod(append(hrpExpand(strings.ToLower(s[:sep])), values...)) != bech32mConst {
			t.Errorf("%s: checksum rejected", s)
		}
	}
	// Bech32 (the original, BIP 173) is not Bech32m.
	if _, _, err := Decode("a12uel5l"); err == nil {
		t.Error("accepted a Bech32 (not Bech32m) checksum")
	}
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 4, 5, 32, 33, 1216} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		s, err := Encode("ppmlpq", data)
		if err != nil {
			t.Fatal(err)
		}
		hrp, got, err := Decode(s)
		if err != nil || hrp != "ppmlpq" || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if _, got, err := Decode(strings.ToUpper(s)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("upper case: %v", err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	s, _ := Encode("ppml", bytes.Repeat([]byte{0xab}, 32))
	for _, tc := range []struct{ in, want string }{
		{s[:len(s)-1], "checksum"},
		{s[:10] + "q" + s[11:], "checksum"},
		{s[:10] + s[11:], "checksum"},
		{s[:10] + "b" + s[11:], "invalid character"},
		{strings.ToUpper(s[:8]) + s[8:], "mixes"},
		{"1qqqqqqqq", "no prefix"},
		{"ppml1qqq", "too short"},
		{"ppml" + strings.Repeat("q", MaxLen), "longer"},
	} {
		if _, _, err := Decode(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range bip350Valid {
		f.Add(s)
	}
	s, _ := Encode("ppml", bytes.Repeat([]byte{1}, 32))
	f.Add(s)
	f.Fuzz(func(t *testing.T, s string) {
		hrp, data, err := Decode(s)
		if err != nil {
			return
		}
		// One encoding per value: re-encoding gives the lowercase input.
		again, err := Encode(hrp, data)
		if err != nil || again != strings.ToLower(s) {
			t.Fatalf("%q decodes but re-encodes as %q (%v)", s, again, err)
		}
	})
}
