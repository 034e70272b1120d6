package mlengine

import (
	"regexp"
	"strings"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/modelfile"
)

// The model file format lives in ml/modelfile, so that the serve engine reads models without
// linking (and so registering) this engine. These are its names in this package.
type (
	Model   = modelfile.Model
	Metrics = modelfile.Metrics
)

const (
	ModelFormat  = modelfile.ModelFormat
	ModelVersion = modelfile.ModelVersion
	MaxModelSize = modelfile.MaxModelSize
)

var (
	DecodeModel = modelfile.DecodeModel
	Export      = modelfile.Export
)

func objectiveOf(xgbObjective string) (mlspec.Objective, bool) {
	return modelfile.ObjectiveOf(xgbObjective)
}

// clip keeps attacker-chosen strings short in errors.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
