// Package linear fits linear regression (least squares, QR) and binary logistic regression
// (L2-regularized, L-BFGS) and reads and writes their models in the JSON format documented in
// docs/formats/linear-model.md.
//
// Linear models take complete numeric tables: a missing value is an error that names its column
// and row (see table.Table.CheckComplete).
package linear

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"

	"github.com/ppml/ppml/ml/table"
)

// Kind names the model type in the JSON.
type Kind string

const (
	LinearRegression   Kind = "linear_regression"
	LogisticRegression Kind = "logistic_regression"
)

// Format and Version identify the JSON format.
const (
	Format  = "ppml-linear-model"
	Version = 1
)

// Model is a fitted linear model. For linear regression the prediction is
// intercept + Σ coefficients[j]·x[features[j]]; for logistic regression that sum is the log-odds
// of class 1 and the prediction is its logistic function, the probability of class 1.
type Model struct {
	Format            string             `json:"format"`
	Version           int                `json:"version"`
	Kind              Kind               `json:"kind"`
	Features          []string           `json:"features"`
	Label             string             `json:"label"`
	Coefficients      []float64          `json:"coefficients"`
	Intercept         float64            `json:"intercept"`
	Params            map[string]float64 `json:"params,omitempty"`
	Metrics           map[string]float64 `json:"metrics,omitempty"`
	TrainingJobDigest string             `json:"training_job_digest,omitempty"`
}

// Parameters each kind may record.
var knownParams = map[Kind][]string{
	LinearRegression:   {},
	LogisticRegression: {"l2"},
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Validate checks a model's consistency (Decode calls it on untrusted input).
func (m *Model) Validate() error {
	if m.Format != Format {
		return fmt.Errorf("linear model: format is %q, want %q", m.Format, Format)
	}
	if m.Version != Version {
		return fmt.Errorf("linear model: version %d is not supported (this build reads version %d)", m.Version, Version)
	}
	allowed, ok := knownParams[m.Kind]
	if !ok {
		return fmt.Errorf("linear model: kind %q is not %q or %q", m.Kind, LinearRegression, LogisticRegression)
	}
	if len(m.Features) == 0 {
		return errors.New("linear model: no features")
	}
	if len(m.Coefficients) != len(m.Features) {
		return fmt.Errorf("linear model: %d coefficients for %d features", len(m.Coefficients), len(m.Features))
	}
	seen := map[string]bool{}
	for i, f := range m.Features {
		if f == "" {
			return fmt.Errorf("linear model: feature %d has an empty name", i+1)
		}
		if seen[f] {
			return fmt.Errorf("linear model: feature %q appears twice", f)
		}
		seen[f] = true
	}
	if m.Label == "" {
		return errors.New("linear model: empty label name")
	}
	if seen[m.Label] {
		return fmt.Errorf("linear model: label %q is also a feature", m.Label)
	}
	for i, c := range m.Coefficients {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			return fmt.Errorf("linear model: coefficient of %q is not finite", m.Features[i])
		}
	}
	if math.IsNaN(m.Intercept) || math.IsInf(m.Intercept, 0) {
		return errors.New("linear model: intercept is not finite")
	}
	for k := range m.Params {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("linear model: parameter %q does not apply to %s", k, m.Kind)
		}
	}
	if m.TrainingJobDigest != "" && !digestRE.MatchString(m.TrainingJobDigest) {
		return errors.New(`linear model: training_job_digest must be "sha256:" and 64 lowercase hex digits`)
	}
	return nil
}

// Encode validates the model and returns its JSON.
func (m *Model) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("linear model: encode: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode reads a model from untrusted JSON: unknown fields, trailing data and inconsistent
// models are errors.
func Decode(b []byte) (*Model, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Model
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("linear model: not a valid model document: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("linear model: trailing data after the JSON document")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Predict applies the model to the table's columns named by the model's features (other columns
// are ignored). A missing feature column or a missing value is an error.
func (m *Model) Predict(t *table.Table) ([]float64, error) {
	x, err := t.Select(m.Features...)
	if err != nil {
		return nil, fmt.Errorf("linear model: %w", err)
	}
	if err := x.CheckComplete(); err != nil {
		return nil, fmt.Errorf("linear model: %w", err)
	}
	out := make([]float64, x.NumRows())
	for i := range out {
		z := m.Intercept
		for j, c := range x.Columns {
			z += m.Coefficients[j] * c[i]
		}
		if m.Kind == LogisticRegression {
			z = sigmoid(z)
		}
		out[i] = z
	}
	return out, nil
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
