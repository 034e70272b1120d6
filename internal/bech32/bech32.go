// Package bech32 encodes byte strings as Bech32m text (BIP 350): a
// human-readable prefix, the separator "1", the data in a 32-character
// alphabet without look-alikes (no 1, b, i, o), and a 6-character BCH
// checksum that catches typing and copying errors. ppml writes public keys
// this way, as age does. Unlike BIP 350 the total length is not limited to
// 90 characters (a hybrid post-quantum public key is about 1950): beyond
// that the checksum still misses a random corruption with probability
// about 2^-30, but no longer guarantees to catch every 4-character error.
package bech32

import (
	"errors"
	"fmt"
	"strings"
)

const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// bech32mConst is the checksum constant of Bech32m (BIP 350).
const bech32mConst = 0x2bc830a3

// MaxLen bounds the text Decode accepts.
const MaxLen = 8192

var gen = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		b := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (b>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func hrpExpand(hrp string) []byte {
	v := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		v = append(v, hrp[i]>>5)
	}
	v = append(v, 0)
	for i := 0; i < len(hrp); i++ {
		v = append(v, hrp[i]&31)
	}
	return v
}

// Encode returns hrp "1" data checksum, lowercase. hrp must be 1 to 83
// printable ASCII characters without upper case.
func Encode(hrp string, data []byte) (string, error) {
	if err := checkHRP(hrp); err != nil {
		return "", err
	}
	if hrp != strings.ToLower(hrp) {
		return "", errors.New("bech32: the prefix must be lowercase")
	}
	values := convertBits(data, 8, 5)
	chk := polymod(append(append(hrpExpand(hrp), values...), 0, 0, 0, 0, 0, 0)) ^ bech32mConst
	var b strings.Builder
	b.Grow(len(hrp) + 1 + len(values) + 6)
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(charset[v])
	}
	for i := 0; i < 6; i++ {
		b.WriteByte(charset[(chk>>(5*(5-i)))&31])
	}
	return b.String(), nil
}

// Decode parses Bech32m text, all lowercase or all uppercase, and returns
// the prefix (lowercase) and the data. Errors say what is wrong without
// repeating the text.
func Decode(s string) (hrp string, data []byte, err error) {
	if len(s) > MaxLen {
		return "", nil, fmt.Errorf("bech32: longer than %d characters", MaxLen)
	}
	lower, upper := strings.ToLower(s), strings.ToUpper(s)
	if s != lower && s != upper {
		return "", nil, errors.New("bech32: mixes upper and lower case")
	}
	s = lower
	sep := strings.LastIndexByte(s, '1')
	if sep < 1 {
		return "", nil, errors.New("bech32: no prefix before the separator 1")
	}
	if len(s)-sep-1 < 6 {
		return "", nil, errors.New("bech32: too short for the checksum")
	}
	hrp = s[:sep]
	if err := checkHRP(hrp); err != nil {
		return "", nil, err
	}
	values := make([]byte, 0, len(s)-sep-1)
	for i := sep + 1; i < len(s); i++ {
		v := strings.IndexByte(charset, s[i])
		if v < 0 {
			return "", nil, fmt.Errorf("bech32: invalid character %q at position %d", s[i], i+1)
		}
		values = append(values, byte(v))
	}
	if polymod(append(hrpExpand(hrp), values...)) != bech32mConst {
		return "", nil, errors.New("bech32: checksum mismatch (a character was changed, added or left out)")
	}
	data, err = convertBack(values[:len(values)-6])
	if err != nil {
		return "", nil, err
	}
	return hrp, data, nil
}

func checkHRP(hrp string) error {
	if len(hrp) < 1 || len(hrp) > 83 {
		return errors.New("bech32: the prefix must be 1 to 83 characters")
	}
	for i := 0; i < len(hrp); i++ {
		if hrp[i] < 33 || hrp[i] > 126 {
			return errors.New("bech32: the prefix has a character outside printable ASCII")
		}
	}
	return nil
}

// convertBits regroups 8-bit bytes into 5-bit values, padding the last.
func convertBits(data []byte, from, to uint) []byte {
	var acc uint32
	var bits uint
	maxv := uint32(1)<<to - 1
	out := make([]byte, 0, (len(data)*int(from)+int(to)-1)/int(to))
	for _, b := range data {
		acc = acc<<from | uint32(b)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv))
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(to-bits)&maxv))
	}
	return out
}

// convertBack regroups 5-bit values into bytes; the padding must be fewer
// than 5 zero bits, so each byte string has exactly one encoding.
func convertBack(values []byte) ([]byte, error) {
	var acc uint32
	var bits uint
	out := make([]byte, 0, len(values)*5/8)
	for _, v := range values {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || acc&(1<<bits-1) != 0 {
		return nil, errors.New("bech32: invalid padding")
	}
	return out, nil
}
