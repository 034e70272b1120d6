package shamir

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

// TestFieldAxioms checks the arithmetic against its definition: every
// non-zero element times its inverse is 1, multiplication distributes over
// addition (xor), and mul agrees with a slow reference (shift-and-reduce with branches).
func TestFieldAxioms(t *testing.T) {
	ref := func(a, b byte) byte {
		var p byte
		for b != 0 {
			if b&1 != 0 {
				p ^= a
			}
			hi := a & 0x80
			a <<= 1
			if hi != 0 {
				a ^= 0x1b
			}
			b >>= 1
		}
		return p
	}
	for a := 0; a < 256; a++ {
		if a != 0 {
			if got := mul(byte(a), inv(byte(a))); got != 1 {
				t.Fatalf("%d * inv(%d) = %d, want 1", a, a, got)
			}
		}
		for b := 0; b < 256; b++ {
			if got, want := mul(byte(a), byte(b)), ref(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%d,%d) = %d, want %d", a, b, got, want)
			}
		}
	}
	// 0x53 * 0xCA = 0x01 is the worked example of FIPS-197 section 4.2.
	if mul(0x53, 0xca) != 0x01 {
		t.Fatal("FIPS-197 example 0x53*0xca != 1")
	}
	if mul(0x57, 0x83) != 0xc1 {
		t.Fatal("FIPS-197 example 0x57*0x83 != 0xc1")
	}
}

func TestSplitCombineEveryKSubset(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, err := Split(secret, 5, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < 5; i++ {
		for j := i + 1; j < 5; j++ {
			for k := j + 1; k < 5; k++ {
				got, err := Combine([]Share{shares[k], shares[i], shares[j]})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("shares %d,%d,%d recovered a different secret", i, j, k)
				}
				n++
			}
		}
	}
	if n != 10 {
		t.Fatalf("tried %d subsets, want 10", n)
	}
	// All five also work (more than K points on a degree K-1 polynomial).
	if got, err := Combine(shares); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("all shares: %v", err)
	}
}

func TestKMinusOneShares(t *testing.T) {
	secret := bytes.Repeat([]byte{0x42}, 32)
	shares, err := Split(secret, 5, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Combine(shares[:2])
	if err == nil || !strings.Contains(err.Error(), "2 of 3 required shares given: need 1 more") {
		t.Fatalf("K-1 shares: err = %v", err)
	}
	// Even when an attacker lies about the threshold, K-1 points of a degree
	// K-1 polynomial say nothing about the secret: interpolation gives another value.
	lie := []Share{shares[0], shares[1]}
	for i := range lie {
		lie[i].Threshold = 2
		lie[i].Y = append([]byte(nil), lie[i].Y...)
	}
	got, err := Combine(lie)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, secret) {
		t.Fatal("two shares of a 3-threshold split recovered the secret")
	}
}

func TestDuplicateAndMixedShares(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, _ := Split(secret, 3, 2, nil)
	b, _ := Split(secret, 3, 2, nil)
	if _, err := Combine([]Share{a[0], a[0]}); err == nil || !strings.Contains(err.Error(), "same share as share 1") {
		t.Fatalf("duplicate: err = %v", err)
	}
	if _, err := Combine([]Share{a[0], b[1]}); err == nil || !strings.Contains(err.Error(), "different split") {
		t.Fatalf("mixed splits: err = %v", err)
	}
}

func TestWrongShareGivesWrongSecret(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	s, _ := Split(secret, 3, 2, nil)
	bad := s[1]
	bad.Y = append([]byte(nil), bad.Y...)
	bad.Y[5] ^= 1
	got, err := Combine([]Share{s[0], bad})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, secret) {
		t.Fatal("a damaged share still recovered the secret")
	}
}

func TestTextRoundTripAndTypos(t *testing.T) {
	shares, err := Split([]byte("root key material, 32 bytes long"), 3, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := shares[2].String()
	if !strings.HasPrefix(text, Prefix) {
		t.Fatalf("text %q lacks prefix", text)
	}
	got, err := Parse("  " + strings.ToUpper(text[:8]) + text[8:] + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.X != shares[2].X || got.Threshold != 2 || got.SetID != shares[2].SetID || !bytes.Equal(got.Y, shares[2].Y) {
		t.Fatalf("round trip changed the share: %+v", got)
	}
	// A single mistyped hex digit is caught by the check bytes.
	b := []byte(text)
	i := len(Prefix) + 20
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	if _, err := Parse(string(b)); err == nil || !strings.Contains(err.Error(), "mistyped or damaged") {
		t.Fatalf("typo: err = %v", err)
	}
	for _, bad := range []string{"", "ppml-share-1:", "ppml-share-1:zz", "share:00", Prefix + "0102"} {
		if _, err := Parse(bad); err == nil {
			t.Fatalf("Parse(%q) succeeded", bad)
		}
	}
}

func TestSplitRejectsBadParameters(t *testing.T) {
	for _, c := range []struct{ n, k, size int }{{3, 1, 32}, {2, 3, 32}, {256, 3, 32}, {3, 2, 0}, {3, 2, MaxSecretSize + 1}} {
		if _, err := Split(make([]byte, c.size), c.n, c.k, nil); err == nil {
			t.Fatalf("Split(n=%d, k=%d, %d bytes) succeeded", c.n, c.k, c.size)
		}
	}
}

func FuzzParse(f *testing.F) {
	s, _ := Split([]byte("0123456789abcdef0123456789abcdef"), 3, 2, nil)
	f.Add(s[0].String())
	f.Add(Prefix + "01020304")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		sh, err := Parse(text)
		if err != nil {
			return
		}
		// Anything accepted must print back to something that parses to the same share.
		again, err := Parse(sh.String())
		if err != nil {
			t.Fatalf("reparse of accepted share: %v", err)
		}
		if again.X != sh.X || again.Threshold != sh.Threshold || again.SetID != sh.SetID || !bytes.Equal(again.Y, sh.Y) {
			t.Fatal("round trip changed an accepted share")
		}
		// Combining with itself must fail cleanly, never panic.
		if _, err := Combine([]Share{sh, sh}); err == nil {
			t.Fatal("combined a share with itself")
		}
	})
}

// TestReconstruct: any K shares give back all N shares of the split.
func TestReconstruct(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, err := Split(secret, 5, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Reconstruct([]Share{shares[4], shares[1], shares[2]}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range shares {
		if all[i].String() != shares[i].String() {
			t.Fatalf("share %d: got %s, want %s", i+1, all[i], shares[i])
		}
	}
	bad := shares[3]
	bad.Y = bytes.Clone(bad.Y)
	bad.Y[0] ^= 1
	if _, err := Reconstruct([]Share{shares[0], shares[1], shares[2], bad}, 5); err == nil {
		t.Fatal("a fourth share off the polynomial accepted")
	}
}
