package dlengine

import (
	"slices"

	"github.com/ppml/ppml/dl/modelfile"
)

// The model file format lives in dl/modelfile, so that the serve engine reads models without
// linking (and so registering) this engine. These are its names in this package.
type (
	Meta      = modelfile.Meta
	InputSpec = modelfile.InputSpec
	Training  = modelfile.Training
	Metrics   = modelfile.Metrics
	Model     = modelfile.Model
)

const (
	MetaFormat   = modelfile.MetaFormat
	MetaVersion  = modelfile.MetaVersion
	MetaFile     = modelfile.MetaFile
	MaxModelSize = modelfile.MaxModelSize
	InputImages  = modelfile.InputImages
	InputTable   = modelfile.InputTable
	InputText    = modelfile.InputText
)

var (
	DecodeModel    = modelfile.DecodeModel
	encodeMeta     = modelfile.EncodeMeta
	writeStateDict = modelfile.WriteStateDict
	digestRE       = modelfile.DigestRE
)

// clip keeps attacker-chosen strings short in errors.
func clip(s string) string { return modelfile.Clip(s) }

// classOf is the arg-max of each row of probabilities (lowest class on ties).
func classOf(probs []float64, classes int) []int {
	n := len(probs) / classes
	out := make([]int, n)
	for i := range n {
		row := probs[i*classes : (i+1)*classes]
		out[i] = slices.Index(row, slices.Max(row))
	}
	return out
}
