// Package synth generates deterministic synthetic tables for benchmarks and tests.
package synth

import (
	"math"
	"math/rand/v2"
)

// Regression returns a rows×cols row-major float32 feature matrix and its labels. Features are
// uniform on [0, 1) from a PCG generator seeded with (seed, 0x5eed); the label mixes linear
// terms, an interaction, a step and Gaussian noise, so that deep trees have something to learn:
//
//	y = Σⱼ (j+1)/cols · xⱼ + 4·x₀·x₁ + 2·[x₂ > 0.5] + sin(6·x₃) + 0.1·ε
//
// (terms whose feature index is ≥ cols are left out). The same arguments give the same bytes on
// every platform and Go release (PCG and NormFloat64 are specified by math/rand/v2).
func Regression(rows, cols int, seed uint64) (x, y []float32) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	x = make([]float32, rows*cols)
	y = make([]float32, rows)
	for i := 0; i < rows; i++ {
		row := x[i*cols : (i+1)*cols]
		var s float64
		for j := range row {
			v := r.Float64()
			row[j] = float32(v)
			s += float64(j+1) / float64(cols) * v
		}
		if cols > 1 {
			s += 4 * float64(row[0]) * float64(row[1])
		}
		if cols > 2 && row[2] > 0.5 {
			s += 2
		}
		if cols > 3 {
			s += math.Sin(6 * float64(row[3]))
		}
		y[i] = float32(s + 0.1*r.NormFloat64())
	}
	return x, y
}
