// Package split makes seeded, deterministic train/test splits.
//
// Algorithm (stable across Go releases, so a split can be reproduced from its seed):
//  1. A ChaCha8 generator (math/rand/v2, the C2SP chacha8rand stream) is seeded with the
//     32-byte key whose first 8 bytes are the seed in little-endian order and the rest zero.
//  2. The row indices 0..n-1 are shuffled by Fisher–Yates from the last position down: for
//     i = n-1 … 1, j is drawn uniformly from [0, i] by rejection sampling (draw a 64-bit word x,
//     reject it while x ≥ 2^64 − (2^64 mod (i+1)), then j = x mod (i+1)), and rows i and j swap.
//  3. The first round(n × testFraction) shuffled indices are the test set, the rest the
//     training set; each set is returned in ascending order.
//
// Other seeded draws of a job use the same generator on other streams: Source(seed, stream)
// keys ChaCha8 with the seed in bytes 0–7 and the stream number in bytes 8–15 (both
// little-endian), so stream 0 is the split above; Shuffle(n, seed, stream) is its step 2.
package split

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// TrainTest splits n rows into train and test row indices.
func TrainTest(n int, testFraction float64, seed uint64) (train, test []int, err error) {
	if !(testFraction > 0 && testFraction < 1) {
		return nil, nil, fmt.Errorf("split: test fraction %v must be in (0, 1)", testFraction)
	}
	nTest := int(math.Round(float64(n) * testFraction))
	if nTest < 1 || nTest > n-1 {
		return nil, nil, fmt.Errorf("split: %d rows with test fraction %v leaves an empty train or test set", n, testFraction)
	}
	perm := Shuffle(n, seed, 0)
	test = slices.Clone(perm[:nTest])
	train = slices.Clone(perm[nTest:])
	slices.Sort(test)
	slices.Sort(train)
	return train, test, nil
}

// Source is the ChaCha8 generator of a seed's stream.
func Source(seed, stream uint64) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	binary.LittleEndian.PutUint64(key[8:16], stream)
	return rand.NewChaCha8(key)
}

// Shuffle returns a permutation of 0..n-1 drawn from Source(seed, stream) by Fisher–Yates
// from the last position down (step 2 of the package comment).
func Shuffle(n int, seed, stream uint64) []int {
	r := Source(seed, stream)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := uniform(r, uint64(i)+1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm
}

// uniform draws from [0, bound) without modulo bias.
func uniform(r *rand.ChaCha8, bound uint64) uint64 {
	// limit = 2^64 - (2^64 mod bound); (-bound) % bound computes 2^64 mod bound in uint64.
	rem := -bound % bound
	for {
		x := r.Uint64()
		if rem == 0 || x < -rem {
			return x % bound
		}
	}
}
