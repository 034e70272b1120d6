// Package modelfile reads and writes ppml's model file (docs/formats/ml-model.md): the wrapper
// the ml engine writes around an XGBoost or linear model, and the bare models it also accepts.
// It is a library, not an engine: the ml engine (engine/ml) trains and applies models with it,
// and the serve engine reads the models it serves without linking or registering the ml engine.
package modelfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/linear"
	"github.com/ppml/ppml/ml/metrics"
	"github.com/ppml/ppml/ml/xgboost"
)

// ModelFormat and ModelVersion identify the ppml model wrapper (docs/formats/ml-model.md).
const (
	ModelFormat  = "ppml-model"
	ModelVersion = 1
)

// MaxModelSize bounds the model documents DecodeModel accepts.
const MaxModelSize = 1 << 30

// Model is a trained model with what predict and evaluate need to know about it. Inner is the
// model itself: XGBoost's JSON model (xgboost, random_forest) or the linear JSON format.
type Model struct {
	Format            string           `json:"format"`
	Version           int              `json:"version"`
	Algorithm         mlspec.Algorithm `json:"algorithm"`
	Objective         mlspec.Objective `json:"objective"`
	Classes           int              `json:"classes,omitempty"` // multiclass only
	Features          []string         `json:"features"`
	Label             string           `json:"label"`
	Metrics           *Metrics         `json:"metrics,omitempty"`
	TrainingJobDigest string           `json:"training_job_digest,omitempty"`
	Inner             json.RawMessage  `json:"model"`

	// Set by DecodeModel from a bare model (not a wrapper): only Inner and what the bare
	// model itself records are known.
	Bare bool `json:"-"`
}

// Metrics are a model's scores on its held-out test rows.
type Metrics struct {
	TestRows       int                     `json:"test_rows"`
	TrainRows      int                     `json:"train_rows"`
	TestFraction   float64                 `json:"test_fraction"`
	Seed           uint64                  `json:"seed"`
	Regression     *metrics.Regression     `json:"regression,omitempty"`
	Classification *metrics.Classification `json:"classification,omitempty"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Encode writes the wrapper as JSON (the inner model verbatim).
func (m *Model) Encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// DecodeModel reads a model file from untrusted bytes: a ppml model wrapper, or a bare XGBoost
// JSON model (as Python's save_model writes it; it must record feature names) or a bare linear
// model. The inner model is fully validated (XGBoost's tree structure, the linear model's
// consistency) and checked against the wrapper's metadata.
func DecodeModel(b []byte) (*Model, error) {
	if len(b) > MaxModelSize {
		return nil, fmt.Errorf("not a model: %d bytes is larger than %d", len(b), MaxModelSize)
	}
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, errors.New("not a model: a model file is a JSON object (ppml model, XGBoost JSON model or ppml linear model)")
	}
	var probe struct {
		Format  *string         `json:"format"`
		Learner json.RawMessage `json:"learner"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return nil, fmt.Errorf("not a model: %v", err)
	}
	switch {
	case probe.Format != nil && *probe.Format == ModelFormat:
		return decodeWrapper(trimmed)
	case probe.Format != nil && *probe.Format == linear.Format:
		return bareLinear(trimmed)
	case probe.Format == nil && probe.Learner != nil:
		return bareXGBoost(trimmed)
	case probe.Format != nil:
		return nil, fmt.Errorf("not a model: format %q is neither %s nor %s", clip(*probe.Format), ModelFormat, linear.Format)
	default:
		return nil, errors.New("not a model: a JSON object without a format field (ppml model) or learner field (XGBoost model)")
	}
}

func decodeWrapper(b []byte) (*Model, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	m := &Model{}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("ppml model: %w", err)
	}
	if m.Version != ModelVersion {
		return nil, fmt.Errorf("ppml model: version %d, this ppml reads version %d", m.Version, ModelVersion)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// validate checks the wrapper's fields and that the inner model agrees with them.
func (m *Model) validate() error {
	if m.Format != ModelFormat {
		return fmt.Errorf("ppml model: format %q, want %q", clip(m.Format), ModelFormat)
	}
	switch m.Algorithm {
	case mlspec.XGBoost, mlspec.RandomForest:
		if m.Objective != mlspec.Regression && m.Objective != mlspec.Binary && m.Objective != mlspec.Multiclass {
			return fmt.Errorf("ppml model: objective %q", clip(string(m.Objective)))
		}
	case mlspec.LinearRegression:
		if m.Objective != mlspec.Regression {
			return fmt.Errorf("ppml model: linear_regression with objective %q", clip(string(m.Objective)))
		}
	case mlspec.LogisticRegression:
		if m.Objective != mlspec.Binary {
			return fmt.Errorf("ppml model: logistic_regression with objective %q", clip(string(m.Objective)))
		}
	default:
		return fmt.Errorf("ppml model: algorithm %q", clip(string(m.Algorithm)))
	}
	if (m.Objective == mlspec.Multiclass) != (m.Classes >= 2) {
		return fmt.Errorf("ppml model: %d classes for objective %s", m.Classes, m.Objective)
	}
	if err := checkNames(m.Features, m.Label); err != nil {
		return fmt.Errorf("ppml model: %w", err)
	}
	if m.TrainingJobDigest != "" && !digestRE.MatchString(m.TrainingJobDigest) {
		return errors.New("ppml model: training_job_digest is not sha256:<64 hex digits>")
	}
	if len(m.Inner) == 0 {
		return errors.New("ppml model: no model field")
	}
	switch m.Algorithm {
	case mlspec.XGBoost, mlspec.RandomForest:
		_, info, err := xgboost.ValidateModelJSON(m.Inner)
		if err != nil {
			return fmt.Errorf("ppml model: %w", err)
		}
		if err := checkXGBoost(info, m.Objective, m.Classes, m.Features); err != nil {
			return fmt.Errorf("ppml model: %w", err)
		}
	default:
		lm, err := linear.Decode(m.Inner)
		if err != nil {
			return fmt.Errorf("ppml model: %w", err)
		}
		if string(lm.Kind) != string(m.Algorithm) || !slices.Equal(lm.Features, m.Features) || lm.Label != m.Label {
			return errors.New("ppml model: the linear model's kind, features or label differ from the wrapper's")
		}
	}
	return nil
}

// ObjectiveOf maps an XGBoost objective to the ones ppml predicts with.
func ObjectiveOf(xgbObjective string) (mlspec.Objective, bool) {
	switch xgbObjective {
	case "reg:squarederror", "reg:absoluteerror":
		return mlspec.Regression, true
	case "binary:logistic":
		return mlspec.Binary, true
	case "multi:softprob":
		return mlspec.Multiclass, true
	}
	return "", false
}

func checkXGBoost(info *xgboost.ModelInfo, obj mlspec.Objective, classes int, features []string) error {
	got, ok := ObjectiveOf(info.Objective)
	if !ok {
		return fmt.Errorf("XGBoost objective %q is not one ppml predicts with (reg:squarederror, reg:absoluteerror, binary:logistic, multi:softprob)", info.Objective)
	}
	if got != obj {
		return fmt.Errorf("XGBoost objective %s does not match objective %s", info.Objective, obj)
	}
	if obj == mlspec.Multiclass && info.NumClass != classes {
		return fmt.Errorf("XGBoost model has %d classes, the wrapper says %d", info.NumClass, classes)
	}
	if info.NumFeature != len(features) {
		return fmt.Errorf("XGBoost model reads %d features, the wrapper lists %d", info.NumFeature, len(features))
	}
	if len(info.FeatureNames) > 0 && !slices.Equal(info.FeatureNames, features) {
		return errors.New("XGBoost model's feature names differ from the wrapper's features")
	}
	return nil
}

func bareXGBoost(b []byte) (*Model, error) {
	_, info, err := xgboost.ValidateModelJSON(b)
	if err != nil {
		return nil, err
	}
	obj, ok := ObjectiveOf(info.Objective)
	if !ok {
		return nil, fmt.Errorf("xgboost model: objective %q is not one ppml predicts with (reg:squarederror, reg:absoluteerror, binary:logistic, multi:softprob)", info.Objective)
	}
	if len(info.FeatureNames) == 0 {
		return nil, errors.New("xgboost model: it records no feature names, so its columns cannot be matched by name; train it on a DMatrix with feature_names (or a pandas DataFrame)")
	}
	if err := checkNames(info.FeatureNames, ""); err != nil {
		return nil, fmt.Errorf("xgboost model: %w", err)
	}
	m := &Model{Format: ModelFormat, Version: ModelVersion, Algorithm: mlspec.XGBoost, Objective: obj,
		Features: info.FeatureNames, Inner: b, Bare: true}
	if obj == mlspec.Multiclass {
		m.Classes = info.NumClass
	}
	return m, nil
}

func bareLinear(b []byte) (*Model, error) {
	lm, err := linear.Decode(b)
	if err != nil {
		return nil, err
	}
	m := &Model{Format: ModelFormat, Version: ModelVersion, Algorithm: mlspec.Algorithm(lm.Kind),
		Features: lm.Features, Label: lm.Label, Inner: b, Bare: true}
	m.Objective = mlspec.Regression
	if lm.Kind == linear.LogisticRegression {
		m.Objective = mlspec.Binary
	}
	return m, nil
}

const maxNameLen = 1024

func checkNames(features []string, label string) error {
	if len(features) == 0 {
		return errors.New("no features")
	}
	seen := map[string]bool{}
	for _, f := range features {
		if f == "" || len(f) > maxNameLen || !utf8.ValidString(f) {
			return fmt.Errorf("feature name %q is empty, too long or not UTF-8", clip(f))
		}
		if seen[f] {
			return fmt.Errorf("feature %q is listed twice", clip(f))
		}
		seen[f] = true
	}
	if label != "" && seen[label] {
		return fmt.Errorf("column %q is both a feature and the label", clip(label))
	}
	if len(label) > maxNameLen || !utf8.ValidString(label) {
		return errors.New("label name is too long or not UTF-8")
	}
	return nil
}

// clip keeps attacker-chosen strings short in errors.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// Export returns the model inside a model file byte for byte: an XGBoost JSON model that
// Python's xgboost.Booster(model_file=…) loads, or a ppml linear model. Tools that re-encode
// JSON (jq prints 1.0 as 1) break XGBoost models, whose loader tells integers from floats.
func Export(modelFile []byte) ([]byte, *Model, error) {
	m, err := DecodeModel(modelFile)
	if err != nil {
		return nil, nil, err
	}
	return m.Inner, m, nil
}
