package linear

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"

	"github.com/ppml/ppml/ml/table"
)

func checkInput(d *table.Dataset) error {
	if d.Y == nil {
		return errors.New("linear: the dataset has no label column")
	}
	if err := d.X.CheckComplete(); err != nil {
		return fmt.Errorf("linear: %w", err)
	}
	if len(d.Y) != d.X.NumRows() {
		return fmt.Errorf("linear: %d labels for %d rows", len(d.Y), d.X.NumRows())
	}
	return nil
}

// FitLinear fits ordinary least squares with an intercept, solving min ‖y − [1 X]β‖² through a
// QR factorization of [1 X] (better conditioned than the normal equations). Features that are
// (numerically) linear combinations of others make the problem rank-deficient: that is an error
// naming the first such feature, rather than an arbitrary solution.
func FitLinear(d *table.Dataset) (*Model, error) {
	if err := checkInput(d); err != nil {
		return nil, err
	}
	n, p := d.X.NumRows(), len(d.X.Names)
	if n <= p+1 {
		return nil, fmt.Errorf("linear: %d rows for %d features and an intercept; need more rows than that", n, p)
	}
	a := mat.NewDense(n, p+1, nil)
	for i := 0; i < n; i++ {
		a.Set(i, 0, 1)
	}
	for j, c := range d.X.Columns {
		for i, v := range c {
			a.Set(i, j+1, v)
		}
	}
	var qr mat.QR
	qr.Factorize(a)
	var r mat.Dense
	qr.RTo(&r)
	// Rank check on R's diagonal, relative to the column scale (Householder QR does not pivot,
	// so a dependent column shows up as a tiny diagonal entry at its own position).
	for j := 0; j <= p; j++ {
		norm := mat.Norm(a.ColView(j), 2)
		if norm == 0 || math.Abs(r.At(j, j)) <= 1e-10*norm {
			if j == 0 {
				return nil, errors.New("linear: intercept column is degenerate")
			}
			return nil, fmt.Errorf("linear: feature %q is constant or a linear combination of the features before it", d.X.Names[j-1])
		}
	}
	var beta mat.Dense
	if err := qr.SolveTo(&beta, false, mat.NewDense(n, 1, slices.Clone(d.Y))); err != nil {
		return nil, fmt.Errorf("linear: least squares: %w", err)
	}
	m := &Model{
		Format:    Format,
		Version:   Version,
		Kind:      LinearRegression,
		Features:  slices.Clone(d.X.Names),
		Label:     d.Label,
		Intercept: beta.At(0, 0),
	}
	for j := 0; j < p; j++ {
		m.Coefficients = append(m.Coefficients, beta.At(j+1, 0))
	}
	return m, m.Validate()
}

// LogisticOptions configures FitLogistic.
type LogisticOptions struct {
	// L2 is the penalty weight λ in Σᵢ logloss(yᵢ, zᵢ) + λ/2·‖w‖², where w are the coefficients
	// of the standardized features (the intercept is not penalized). λ = 1/C of scikit-learn's
	// LogisticRegression applied after a StandardScaler. 0 means the default, 1.
	L2 float64
	// MaxIterations bounds L-BFGS (0: 1000).
	MaxIterations int
}

// FitLogistic fits binary logistic regression; labels must be 0 or 1. Features are standardized
// (mean 0, standard deviation 1) for the optimization, which makes L-BFGS converge on features
// of very different scales and makes the penalty scale-free; the saved coefficients are mapped
// back to the raw features, so prediction needs no scaler.
func FitLogistic(d *table.Dataset, opt LogisticOptions) (*Model, error) {
	if err := checkInput(d); err != nil {
		return nil, err
	}
	l2 := opt.L2
	if l2 == 0 {
		l2 = 1
	}
	if !(l2 > 0) || math.IsInf(l2, 0) {
		return nil, fmt.Errorf("linear: L2 penalty %v must be positive and finite", opt.L2)
	}
	iters := opt.MaxIterations
	if iters == 0 {
		iters = 1000
	}
	var pos int
	for i, y := range d.Y {
		if y != 0 && y != 1 {
			return nil, fmt.Errorf("linear: label %q, row %d: logistic regression needs labels 0 or 1", d.Label, i+1)
		}
		if y == 1 {
			pos++
		}
	}
	if pos == 0 || pos == len(d.Y) {
		return nil, fmt.Errorf("linear: label %q has only one class", d.Label)
	}
	n, p := d.X.NumRows(), len(d.X.Names)
	mean, sd := make([]float64, p), make([]float64, p)
	z := make([][]float64, p) // standardized columns
	for j, c := range d.X.Columns {
		for _, v := range c {
			mean[j] += v
		}
		mean[j] /= float64(n)
		for _, v := range c {
			sd[j] += (v - mean[j]) * (v - mean[j])
		}
		sd[j] = math.Sqrt(sd[j] / float64(n))
		if sd[j] == 0 {
			sd[j] = 1 // a constant feature standardizes to 0 and keeps a zero coefficient
		}
		z[j] = make([]float64, n)
		for i, v := range c {
			z[j][i] = (v - mean[j]) / sd[j]
		}
	}
	// Parameters: x[0] intercept, x[1+j] coefficient of standardized feature j.
	margin := func(x []float64, out []float64) {
		for i := range out {
			out[i] = x[0]
		}
		for j := 0; j < p; j++ {
			w := x[1+j]
			for i, v := range z[j] {
				out[i] += w * v
			}
		}
	}
	buf := make([]float64, n)
	problem := optimize.Problem{
		Func: func(x []float64) float64 {
			margin(x, buf)
			var f float64
			for i, m := range buf {
				f += softplus(m) - d.Y[i]*m
			}
			for _, w := range x[1:] {
				f += l2 / 2 * w * w
			}
			return f
		},
		Grad: func(g, x []float64) {
			margin(x, buf)
			for i, m := range buf {
				buf[i] = sigmoid(m) - d.Y[i]
			}
			g[0] = 0
			for _, r := range buf {
				g[0] += r
			}
			for j := 0; j < p; j++ {
				s := l2 * x[1+j]
				for i, v := range z[j] {
					s += buf[i] * v
				}
				g[1+j] = s
			}
		},
	}
	// Gradients are sums over rows, so tolerances scale with n. L-BFGS's line search can fail
	// from rounding once it is within ~1e-7 of the optimum; what decides is the gradient at the
	// point it returns: the mean gradient must be below 1e-6.
	res, err := optimize.Minimize(problem, make([]float64, p+1), &optimize.Settings{
		GradientThreshold: 1e-9 * float64(n),
		MajorIterations:   iters,
	}, &optimize.LBFGS{})
	if res == nil {
		return nil, fmt.Errorf("linear: L-BFGS: %w", err)
	}
	g := make([]float64, p+1)
	problem.Grad(g, res.X)
	if gmax := floats.Norm(g, math.Inf(1)); !(gmax <= 1e-6*float64(n)) {
		return nil, fmt.Errorf("linear: L-BFGS stopped after %d iterations without converging (%v, %v; largest mean gradient %.3g)",
			res.Stats.MajorIterations, res.Status, err, gmax/float64(n))
	}
	m := &Model{
		Format:   Format,
		Version:  Version,
		Kind:     LogisticRegression,
		Features: slices.Clone(d.X.Names),
		Label:    d.Label,
		Params:   map[string]float64{"l2": l2},
	}
	m.Intercept = res.X[0]
	for j := 0; j < p; j++ {
		w := res.X[1+j] / sd[j]
		m.Coefficients = append(m.Coefficients, w)
		m.Intercept -= w * mean[j]
	}
	return m, m.Validate()
}

// softplus is log(1 + eᶻ) without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}
