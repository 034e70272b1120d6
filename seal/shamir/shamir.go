// Package shamir splits a secret into N shares of which any K recover it
// (Shamir's secret sharing over GF(2^8)), and defines the printable share
// format that operators keep.
//
// The field arithmetic uses no lookup tables and no secret-dependent
// branches, so the time taken does not depend on the secret or share bytes.
//
// Text form of a share (see docs/guide/operator.md):
//
//	ppml-share-1:<hex of: version | K | x | set id (4) | y (len(secret)) | check (4)>
//
// where check is the first 4 bytes of SHA-256("ppml-share" || the bytes
// before it). The check catches typos; it is not a MAC: whether K shares are
// genuine is decided by the caller against a verifier of the secret (package
// seal keeps one), never by this package.
package shamir

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	// Prefix starts every share in text form.
	Prefix = "ppml-share-1:"
	// shareVersion is the first byte of a share's binary form.
	shareVersion = 1
	setIDSize    = 4
	checkSize    = 4
	// MaxSecretSize bounds the secrets (and so the share lengths) accepted.
	MaxSecretSize = 1024
)

// Share is one point of the sharing polynomials.
type Share struct {
	Threshold int     // K: shares needed to recover the secret
	X         byte    // x coordinate, 1..255, distinct within a split
	SetID     [4]byte // random per split: shares of different splits never mix
	Y         []byte  // one byte per secret byte
}

// Split divides secret into n shares, any k of which recover it.
// Randomness comes from rnd (crypto/rand when nil).
func Split(secret []byte, n, k int, rnd io.Reader) ([]Share, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	switch {
	case len(secret) == 0:
		return nil, errors.New("shamir: empty secret")
	case len(secret) > MaxSecretSize:
		return nil, fmt.Errorf("shamir: secret of %d bytes exceeds %d", len(secret), MaxSecretSize)
	case k < 2:
		return nil, fmt.Errorf("shamir: threshold %d: need at least 2 (a threshold of 1 would make every share the secret)", k)
	case n < k:
		return nil, fmt.Errorf("shamir: %d shares cannot meet threshold %d", n, k)
	case n > 255:
		return nil, fmt.Errorf("shamir: %d shares: at most 255", n)
	}
	var set [4]byte
	if _, err := io.ReadFull(rnd, set[:]); err != nil {
		return nil, fmt.Errorf("shamir: random set id: %w", err)
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{Threshold: k, X: byte(i + 1), SetID: set, Y: make([]byte, len(secret))}
	}
	coeffs := make([]byte, k) // coeffs[0] is the secret byte
	defer clear(coeffs)
	for b, s := range secret {
		coeffs[0] = s
		if _, err := io.ReadFull(rnd, coeffs[1:]); err != nil {
			return nil, fmt.Errorf("shamir: random coefficients: %w", err)
		}
		for i := range shares {
			shares[i].Y[b] = evalPoly(coeffs, shares[i].X)
		}
	}
	return shares, nil
}

// Combine recovers the secret from at least Threshold shares of one split.
// It rejects too few shares, duplicates and mixed splits with an error that
// says so. Shares that are well formed but wrong (forged or from a damaged
// copy) produce a wrong secret: callers must check the result against a
// verifier.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, errors.New("shamir: no shares")
	}
	first := shares[0]
	if first.Threshold < 2 {
		return nil, fmt.Errorf("shamir: share 1: threshold %d is invalid", first.Threshold)
	}
	if len(first.Y) == 0 || len(first.Y) > MaxSecretSize {
		return nil, fmt.Errorf("shamir: share 1: %d data bytes is invalid", len(first.Y))
	}
	seen := make(map[byte]int, len(shares))
	for i, s := range shares {
		if s.SetID != first.SetID {
			return nil, fmt.Errorf("shamir: share %d belongs to a different split (set %x) than share 1 (set %x)", i+1, s.SetID, first.SetID)
		}
		if s.Threshold != first.Threshold {
			return nil, fmt.Errorf("shamir: share %d says threshold %d, share 1 says %d", i+1, s.Threshold, first.Threshold)
		}
		if len(s.Y) != len(first.Y) {
			return nil, fmt.Errorf("shamir: share %d has %d data bytes, share 1 has %d", i+1, len(s.Y), len(first.Y))
		}
		if s.X == 0 {
			return nil, fmt.Errorf("shamir: share %d has x = 0, which would be the secret itself", i+1)
		}
		if j, dup := seen[s.X]; dup {
			return nil, fmt.Errorf("shamir: share %d is the same share as share %d (x = %d): each share counts once", i+1, j, s.X)
		}
		seen[s.X] = i + 1
	}
	if len(shares) < first.Threshold {
		return nil, fmt.Errorf("shamir: %d of %d required shares given: need %d more", len(shares), first.Threshold, first.Threshold-len(shares))
	}
	return interpolate(shares, 0), nil
}

// interpolate evaluates the split's polynomials at x by Lagrange
// interpolation: y(x) = sum_i y_i * prod_{j!=i} (x - x_j) / (x_i - x_j)
// (subtraction is xor in GF(2^8)). At x = 0 it is the secret.
func interpolate(shares []Share, x byte) []byte {
	out := make([]byte, len(shares[0].Y))
	for i, si := range shares {
		basis := byte(1)
		for j, sj := range shares {
			if i == j {
				continue
			}
			basis = mul(basis, mul(x^sj.X, inv(si.X^sj.X)))
		}
		for b := range out {
			out[b] ^= mul(si.Y[b], basis)
		}
	}
	return out
}

// Reconstruct returns the shares of the split at x = 1..n, recomputed
// from at least Threshold of its shares (checked as Combine checks them).
// Split numbers the shares it makes 1..n, so this gives back every share
// of the split: the key service uses it to learn the commitments of all
// shares of an older split once operators unsealed it.
func Reconstruct(shares []Share, n int) ([]Share, error) {
	secret, err := Combine(shares)
	if err != nil {
		return nil, err
	}
	clear(secret)
	if n < shares[0].Threshold || n > 255 {
		return nil, fmt.Errorf("shamir: %d shares cannot meet threshold %d", n, shares[0].Threshold)
	}
	k := shares[0].Threshold
	out := make([]Share, n)
	for i := range out {
		x := byte(i + 1)
		out[i] = Share{Threshold: k, X: x, SetID: shares[0].SetID, Y: interpolate(shares[:k], x)}
	}
	// More than K shares given: every one must lie on the same polynomials.
	for _, s := range shares[k:] {
		if int(s.X) > n || !bytes.Equal(out[s.X-1].Y, s.Y) {
			return nil, fmt.Errorf("shamir: share x = %d does not lie on the split the others define", s.X)
		}
	}
	return out, nil
}

// evalPoly evaluates the polynomial with the given coefficients (lowest
// degree first) at x, by Horner's rule.
func evalPoly(coeffs []byte, x byte) byte {
	var y byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coeffs[i]
	}
	return y
}

// mul multiplies in GF(2^8) modulo x^8+x^4+x^3+x+1 (the AES polynomial),
// in constant time: every iteration does the same work, masks replace branches.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		carry := -(a >> 7)
		a = a<<1 ^ 0x1b&carry
		b >>= 1
	}
	return p
}

// inv returns the multiplicative inverse a^254 (a^-1 since a^255 = 1), with
// a fixed square-and-multiply chain. inv(0) is 0; callers never pass 0.
func inv(a byte) byte {
	a2 := mul(a, a)     // a^2
	a3 := mul(a2, a)    // a^3
	a6 := mul(a3, a3)   // a^6
	a12 := mul(a6, a6)  // a^12
	a15 := mul(a12, a3) // a^15
	a30 := mul(a15, a15)
	a60 := mul(a30, a30)
	a120 := mul(a60, a60)
	a126 := mul(a120, a6)
	a252 := mul(a126, a126)
	return mul(a252, a2) // a^254
}

// Bytes returns the binary form of the share (including its check bytes).
func (s Share) Bytes() []byte {
	b := make([]byte, 0, 3+setIDSize+len(s.Y)+checkSize)
	b = append(b, shareVersion, byte(s.Threshold), s.X)
	b = append(b, s.SetID[:]...)
	b = append(b, s.Y...)
	return append(b, check(b)...)
}

// String returns the text form that operators keep.
func (s Share) String() string { return Prefix + hex.EncodeToString(s.Bytes()) }

func check(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte("ppml-share"))
	h.Write(b)
	return h.Sum(nil)[:checkSize]
}

// Parse reads a share in text form. Surrounding white space and spaces or
// dashes inside the hex (as people copy it) are ignored; case is not significant.
func Parse(text string) (Share, error) {
	t := strings.TrimSpace(text)
	if len(t) > 2*(3+setIDSize+MaxSecretSize+checkSize)+len(Prefix)+1024 {
		return Share{}, fmt.Errorf("share: %d characters is far too long for a share", len(t))
	}
	if len(t) < len(Prefix) || !strings.EqualFold(t[:len(Prefix)], Prefix) {
		return Share{}, fmt.Errorf("share: does not start with %q", Prefix)
	}
	t = strings.NewReplacer(" ", "", "-", "", "\t", "", "\n", "", "\r", "").Replace(t[len(Prefix):])
	raw, err := hex.DecodeString(t)
	if err != nil {
		return Share{}, fmt.Errorf("share: not hex after %q: %w", Prefix, err)
	}
	return ParseBytes(raw)
}

// ParseBytes reads a share in binary form.
func ParseBytes(raw []byte) (Share, error) {
	const overhead = 3 + setIDSize + checkSize
	if len(raw) < overhead+1 {
		return Share{}, fmt.Errorf("share: %d bytes is too short (at least %d)", len(raw), overhead+1)
	}
	if len(raw) > overhead+MaxSecretSize {
		return Share{}, fmt.Errorf("share: %d bytes is too long (at most %d)", len(raw), overhead+MaxSecretSize)
	}
	body, sum := raw[:len(raw)-checkSize], raw[len(raw)-checkSize:]
	if !bytes.Equal(check(body), sum) {
		return Share{}, errors.New("share: check bytes do not match: the share was mistyped or damaged")
	}
	if body[0] != shareVersion {
		return Share{}, fmt.Errorf("share: version %d is not supported (want %d)", body[0], shareVersion)
	}
	s := Share{Threshold: int(body[1]), X: body[2]}
	if s.Threshold < 2 {
		return Share{}, fmt.Errorf("share: threshold %d is invalid (at least 2)", s.Threshold)
	}
	if s.X == 0 {
		return Share{}, errors.New("share: x coordinate 0 is invalid")
	}
	copy(s.SetID[:], body[3:3+setIDSize])
	s.Y = append([]byte(nil), body[3+setIDSize:]...)
	return s, nil
}
