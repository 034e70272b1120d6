// Package modelfile reads and writes the dl engine's model files (docs/formats/dl-model.md):
// TorchScript archives and state dicts carrying ppml's metadata (extra/ppml.json). Reading is
// for untrusted bytes: package dl/ptfile takes the tensors out as data, never code, and they
// must match a built-in architecture exactly (package dl/arch), from whose own TorchScript the
// caller rebuilds the model.
//
// The package is pure Go: the dl engine trains and applies models with it, and the serve
// engine's TorchScript backend reads models with it without linking (and so registering) the
// dl engine.
package modelfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/declared"
	"github.com/ppml/ppml/dl/ptfile"
	"github.com/ppml/ppml/dl/text"
	"github.com/ppml/ppml/ml/metrics"
)

// MetaFormat and MetaVersion identify ppml's model metadata (docs/formats/dl-model.md), kept
// as extra/ppml.json in the model's TorchScript archive and in its state dict.
const (
	MetaFormat  = "ppml-dl-model"
	MetaVersion = 1
	MetaFile    = "ppml.json"
)

// MaxModelSize bounds model files.
const MaxModelSize = 1 << 30

// Input kinds.
const (
	InputImages = "images"
	InputTable  = "table"
	InputText   = "text"
	// InputTensor is a declared model's input of another shape (declared.Model): served,
	// not read from images or tables by the dl engine.
	InputTensor = "tensor"
)

// Meta is what predict and evaluate need to know about a model besides its tensors, and what
// the training recorded.
type Meta struct {
	Format       string      `json:"format"`
	Version      int         `json:"version"`
	Architecture arch.Config `json:"architecture"`
	Input        InputSpec   `json:"input"`
	// Label is the label column of a table at training.
	Label string `json:"label,omitempty"`
	// Vocabulary of the text classifier: id i is word i; id 0 is "<unk>".
	Vocabulary        []string  `json:"vocabulary,omitempty"`
	Training          *Training `json:"training,omitempty"`
	Metrics           *Metrics  `json:"metrics,omitempty"`
	TrainingJobDigest string    `json:"training_job_digest,omitempty"`
	TorchVersion      string    `json:"torch_version,omitempty"`
}

// InputSpec is what the model reads.
type InputSpec struct {
	Kind string `json:"kind"` // images, table or text
	// images: pixels / 255 shaped N × 1 × Height × Width.
	Height int `json:"height,omitempty"`
	Width  int `json:"width,omitempty"`
	// table: the feature columns in order.
	Features []string `json:"features,omitempty"`
	// text: the text column and how many tokens of each text are read.
	TextColumn string `json:"text_column,omitempty"`
	MaxTokens  int    `json:"max_tokens,omitempty"`
}

// Training records how a model was trained. Nothing here depends on the machine or the
// time, so that the same job makes the same file.
type Training struct {
	Optimizer    string    `json:"optimizer"`
	LearningRate float64   `json:"learning_rate"`
	Momentum     float64   `json:"momentum,omitempty"`
	WeightDecay  float64   `json:"weight_decay"`
	Epochs       int       `json:"epochs"`
	LRStepEpochs int       `json:"lr_step_epochs,omitempty"` // with LRGamma: StepLR's schedule
	LRGamma      float64   `json:"lr_gamma,omitempty"`
	BatchSize    int       `json:"batch_size"`
	Seed         uint64    `json:"seed"`
	Threads      int       `json:"threads"`
	TrainRows    int       `json:"train_rows"`
	EpochLoss    []float64 `json:"epoch_loss"`
}

// Metrics are scores on held-out data: the test_images and test_labels inputs, or the
// test_fraction of a table.
type Metrics struct {
	TestRows       int                     `json:"test_rows"`
	Source         string                  `json:"source"` // "test inputs" or "test_fraction 0.2, seed 42"
	Classification *metrics.Classification `json:"classification"`
}

// DigestRE matches a job digest as model files record it.
var DigestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// validate checks the metadata's consistency with itself (not yet with tensors).
func (m *Meta) validate() error {
	if m.Format != MetaFormat {
		return fmt.Errorf("format %q, want %q", Clip(m.Format), MetaFormat)
	}
	if m.Version != MetaVersion {
		return fmt.Errorf("version %d, this ppml reads version %d", m.Version, MetaVersion)
	}
	c := m.Architecture
	if c.Kind == arch.Layers {
		// Layers are what a job declares for a file without metadata; a file does not
		// choose its own computation.
		return errors.New("architecture: layers are declared by the job (parameters.torchscript), not by a model file")
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("architecture: %w", err)
	}
	in := m.Input
	switch in.Kind {
	case InputImages:
		if in.Height < 1 || in.Width < 1 || in.Height > 1<<15 || in.Width > 1<<15 || in.Features != nil || in.TextColumn != "" || in.MaxTokens != 0 {
			return errors.New("input: images need a height and width and nothing else")
		}
		if c.Kind == arch.LeNet5 && (in.Height != arch.ImageSize || in.Width != arch.ImageSize) {
			return fmt.Errorf("input: lenet5 reads %d × %d images, not %d × %d", arch.ImageSize, arch.ImageSize, in.Height, in.Width)
		}
		if c.Kind == arch.MLP && in.Height*in.Width != c.Inputs {
			return fmt.Errorf("input: %d × %d images for an mlp of %d inputs", in.Height, in.Width, c.Inputs)
		}
		if c.Kind == arch.Text {
			return errors.New("input: the text classifier does not read images")
		}
	case InputTable:
		if c.Kind != arch.MLP || len(in.Features) != c.Inputs {
			return fmt.Errorf("input: a table of %d features for %s", len(in.Features), c.Kind)
		}
		if err := checkColumns(in.Features, m.Label); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	case InputText:
		if c.Kind != arch.Text || in.TextColumn == "" || !utf8.ValidString(in.TextColumn) || in.MaxTokens < 1 || in.MaxTokens > 1<<20 {
			return errors.New("input: text needs the text classifier, a text column and max_tokens")
		}
		if len(m.Vocabulary) != c.VocabSize {
			return fmt.Errorf("vocabulary of %d words for an embedding of %d", len(m.Vocabulary), c.VocabSize)
		}
		if _, err := text.NewVocabulary(m.Vocabulary); err != nil {
			return err
		}
	default:
		return fmt.Errorf("input kind %q (want images, table or text)", Clip(in.Kind))
	}
	if m.Input.Kind != InputText && m.Vocabulary != nil {
		return errors.New("a vocabulary without text input")
	}
	if m.TrainingJobDigest != "" && !DigestRE.MatchString(m.TrainingJobDigest) {
		return errors.New("training_job_digest is not sha256:<64 hex digits>")
	}
	return nil
}

func checkColumns(features []string, label string) error {
	seen := map[string]bool{}
	for _, f := range features {
		if f == "" || len(f) > 1024 || !utf8.ValidString(f) || seen[f] {
			return fmt.Errorf("feature column %q is empty, too long, not UTF-8 or repeated", Clip(f))
		}
		seen[f] = true
	}
	if seen[label] {
		return fmt.Errorf("column %q is both a feature and the label", Clip(label))
	}
	return nil
}

// Model is a model read from a file: its metadata, architecture and tensors.
type Model struct {
	Meta    *Meta
	Tensors []arch.Tensor
	// Bare is set for a file without ppml metadata (its architecture was declared by the
	// job); Meta then holds only what the tensors and the declaration tell.
	Bare bool
	Kind ptfile.Kind
	// Declared is the job's declaration of a file without ppml metadata (DecodeDeclared).
	Declared *declared.Model
}

// DecodeModel reads a model file from untrusted bytes: a TorchScript archive or a state dict,
// from ppml or from PyTorch. Only tensors are taken from it — never its code — and they must
// match the architecture exactly: the one its extra/ppml.json records, or, for a file without
// one, the one declared (lenet5, or an mlp over images; a text model needs its vocabulary, so
// it needs the metadata).
func DecodeModel(b []byte, declared arch.Kind) (*Model, error) {
	if len(b) > MaxModelSize {
		return nil, fmt.Errorf("not a model: %d bytes is more than %d", len(b), MaxModelSize)
	}
	f, err := ptfile.Read(b, ptfile.Limits{MaxBytes: MaxModelSize})
	if err != nil {
		if errors.Is(err, ptfile.ErrNotArchive) {
			return nil, errors.New("not a model: a model file is a TorchScript archive (torch.jit.save) or a state dict (torch.save), both zip archives")
		}
		return nil, fmt.Errorf("not a model: %w", err)
	}
	out := &Model{Kind: f.Kind}
	if raw, ok := f.Extra[MetaFile]; ok {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		m := &Meta{}
		if err := dec.Decode(m); err != nil {
			return nil, fmt.Errorf("model metadata (extra/%s): %w", MetaFile, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("model metadata (extra/%s): more than one JSON value", MetaFile)
		}
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("model metadata (extra/%s): %w", MetaFile, err)
		}
		if declared != "" && declared != m.Architecture.Kind {
			return nil, fmt.Errorf("the job declares model %s, the model file holds a %s", declared, m.Architecture.Kind)
		}
		out.Meta = m
	} else {
		if declared == "" {
			return nil, fmt.Errorf("the model file has no ppml metadata (extra/%s): declare its architecture with the model parameter (lenet5 or mlp)", MetaFile)
		}
		if declared == arch.Text {
			return nil, fmt.Errorf("a text model needs its vocabulary: save it with torch.jit.save(m, f, _extra_files={%q: …}) as docs/formats/dl-model.md describes", MetaFile)
		}
		c, err := arch.Infer(declared, f.Tensors)
		if err != nil {
			return nil, err
		}
		m := &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: c, Input: InputSpec{Kind: InputImages}}
		if c.Kind == arch.LeNet5 {
			m.Input.Height, m.Input.Width = arch.ImageSize, arch.ImageSize
		}
		out.Meta, out.Bare = m, true
	}
	if out.Tensors, err = out.Meta.Architecture.Match(f.Tensors); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeDeclared reads a model file without ppml metadata — a module saved by plain PyTorch —
// as the job declares it: only its tensors are taken, and they must be exactly those of the
// declared architecture and sizes. A file with ppml metadata is refused: its metadata, not
// the job, says what it is.
func DecodeDeclared(b []byte, d *declared.Model) (*Model, error) {
	if len(b) > MaxModelSize {
		return nil, fmt.Errorf("not a model: %d bytes is more than %d", len(b), MaxModelSize)
	}
	f, err := ptfile.Read(b, ptfile.Limits{MaxBytes: MaxModelSize})
	if err != nil {
		if errors.Is(err, ptfile.ErrNotArchive) {
			return nil, errors.New("not a model: a model file is a TorchScript archive (torch.jit.save) or a state dict (torch.save), both zip archives")
		}
		return nil, fmt.Errorf("not a model: %w", err)
	}
	if _, ok := f.Extra[MetaFile]; ok {
		return nil, fmt.Errorf("the model file carries ppml metadata (extra/%s), which describes it: leave out the job's torchscript declaration", MetaFile)
	}
	c := d.Config()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("the declared architecture: %w", err)
	}
	m := &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: c}
	if h, w, ok := d.Image(); ok && d.Input.Features == nil {
		m.Input = InputSpec{Kind: InputImages, Height: h, Width: w}
	} else if len(d.Input.Shape) == 1 {
		m.Input = InputSpec{Kind: InputTable, Features: d.Input.Features}
	} else {
		m.Input = InputSpec{Kind: InputTensor}
	}
	out := &Model{Meta: m, Bare: true, Kind: f.Kind, Declared: d}
	if out.Tensors, err = c.Match(f.Tensors); err != nil {
		return nil, fmt.Errorf("%w (the job declares %s)", err, d)
	}
	return out, nil
}

// EncodeMeta is the metadata as written in model files, checked first.
func EncodeMeta(m *Meta) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("model metadata: %w", err)
	}
	return json.MarshalIndent(m, "", " ")
}

// stateDictName is the archive name inside the state dict (torch.load ignores it).
const stateDictName = "state_dict"

// WriteStateDict writes tensors and metadata as a state dict (what torch.save writes).
func WriteStateDict(w *bytes.Buffer, ts []arch.Tensor, meta []byte) error {
	pts := make([]ptfile.Tensor, len(ts))
	for i, t := range ts {
		pts[i] = ptfile.Tensor{Name: t.Name, DType: ptfile.Float32, Shape: t.Shape, Data: t.Data}
	}
	return ptfile.WriteStateDict(w, stateDictName, pts, map[string][]byte{MetaFile: meta})
}

// Clip keeps attacker-chosen strings short in errors.
func Clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
