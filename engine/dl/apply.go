package dlengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ppml/ppml/dl/modelfile"
	"github.com/ppml/ppml/dl/text"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/engine/dl/dlspec"
)

// readModel reads the model input (counted against the memory limit) and decodes it.
func readModel(in Input, p *dlspec.Params, b *budget) (*Model, error) {
	ra, size, done, err := in.open()
	if err != nil {
		return nil, fmt.Errorf("dl job: model input: %w", err)
	}
	defer done()
	if size > MaxModelSize {
		return nil, fmt.Errorf("dl job: model input: %d bytes is more than %d", size, MaxModelSize)
	}
	// The bytes, and the tensors decoded from them.
	if err := b.reserve("model file", 2*size); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.NewSectionReader(ra, 0, size))
	if err != nil {
		return nil, fmt.Errorf("dl job: model input: %w", err)
	}
	var m *Model
	if p.Declared != nil {
		m, err = modelfile.DecodeDeclared(raw, p.Declared)
	} else {
		m, err = DecodeModel(raw, p.Model)
	}
	if err != nil {
		return nil, fmt.Errorf("dl job: model input: %w", err)
	}
	return m, nil
}

// applyData reads the data input as the model reads it.
func applyData(p *dlspec.Params, mod *Model, inputs map[string]Input, b *budget) (train.Data, string, func(), error) {
	meta, evaluate := mod.Meta, p.Task == dlspec.Evaluate
	c := meta.Architecture
	if p.Images {
		if meta.Input.Kind != InputImages {
			return nil, "", nil, fmt.Errorf("the model reads %s input, the job gives images", meta.Input.Kind)
		}
		var labels *Input
		if evaluate {
			l := inputs[dlspec.InputLabels]
			labels = &l
		}
		d, done, err := images(inputs[dlspec.InputImages], labels, dlspec.InputImages, dlspec.InputLabels, b)
		if err != nil {
			return nil, "", nil, err
		}
		h, w := d.Size()
		want := meta.Input.Height*meta.Input.Width == 0 && h*w == c.Inputs || h == meta.Input.Height && w == meta.Input.Width
		if !want {
			done()
			if meta.Input.Height == 0 {
				return nil, "", nil, fmt.Errorf("input images: %d × %d images for an mlp of %d inputs", h, w, c.Inputs)
			}
			return nil, "", nil, fmt.Errorf("input images: the model reads %d × %d images, these are %d × %d", meta.Input.Height, meta.Input.Width, h, w)
		}
		return d, "labels", done, nil
	}
	in := inputs[dlspec.InputData]
	label := ""
	if evaluate {
		label = p.Label
		if label == "" {
			label = meta.Label
		}
		if label == "" {
			return nil, "", nil, errors.New("the model records no label column: give label to evaluate")
		}
	}
	switch meta.Input.Kind {
	case InputTable:
		d, err := numericTable(in, dlspec.InputData, meta.Input.Features, label, b)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%w (the model reads features %s)", err, joinClip(meta.Input.Features))
		}
		r, err := rowsOf(d, b)
		if err != nil {
			return nil, "", nil, fmt.Errorf("input data: %w", err)
		}
		return r, fmt.Sprintf("label column %q", label), func() {}, nil
	case InputText:
		t, err := textTable(in, dlspec.InputData, meta.Input.TextColumn, label, b)
		if err != nil {
			return nil, "", nil, err
		}
		v, err := text.NewVocabulary(meta.Vocabulary)
		if err != nil {
			return nil, "", nil, err
		}
		d, err := encodeTexts(v, t.Texts, t.Labels, meta.Input.MaxTokens, b)
		if err != nil {
			return nil, "", nil, err
		}
		return d, fmt.Sprintf("label column %q", label), func() {}, nil
	}
	if mod.Bare {
		return nil, "", nil, fmt.Errorf("a %s model file without ppml metadata reads images (IDX inputs images and labels); for a table it needs extra/%s naming its features", c.Kind, MetaFile)
	}
	return nil, "", nil, fmt.Errorf("the model reads %s input, the job gives a table", meta.Input.Kind)
}

func joinClip(s []string) string {
	out := ""
	for i, v := range s {
		if i == 10 {
			return out + ", …"
		}
		if i > 0 {
			out += ", "
		}
		out += clip(v)
	}
	return out
}

func runApply(ctx context.Context, cfg Config, p *dlspec.Params, inputs map[string]Input, outputs map[string]Output, b *budget) (*Result, error) {
	mod, err := readModel(inputs[dlspec.InputModel], p, b)
	if err != nil {
		return nil, err
	}
	c := mod.Meta.Architecture
	d, labelWhat, done, err := applyData(p, mod, inputs, b)
	if err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	defer done()
	if p.Task == dlspec.Evaluate {
		if err := checkLabels(d.Labels(), c.Classes, labelWhat); err != nil {
			return nil, fmt.Errorf("dl job: %w", err)
		}
	}
	cfg.Logf("dl engine: %s with %s (%d classes) on %d rows, batches of %d", p.Task, c.Kind, c.Classes, d.Len(), p.BatchSize)
	m, err := train.NewModel(c, mod.Tensors, cfg.Threads)
	if err != nil {
		return nil, fmt.Errorf("dl job: model input: %w", err)
	}
	defer m.Close()
	res := &Result{Task: p.Task, Rows: d.Len()}
	probs, err := predictTimed(ctx, m, d, c.Classes, p.BatchSize, res)
	if err != nil {
		return nil, fmt.Errorf("dl job: predict: %w", err)
	}
	bufs := map[string][]byte{}
	if _, ok := outputs[dlspec.OutputPredictions]; ok {
		var labels []string
		if p.Declared != nil {
			labels = p.Declared.Output.Labels
		}
		bufs[dlspec.OutputPredictions] = predictionsCSV(probs, c.Classes, labels)
	}
	if p.Task == dlspec.Evaluate {
		cl, err := score(d.Labels(), probs, c.Classes)
		if err != nil {
			return nil, fmt.Errorf("dl job: metrics: %w", err)
		}
		res.Report = reportOf(dlspec.Evaluate, mod.Meta)
		res.Report.Metrics = &Metrics{TestRows: d.Len(), Source: "evaluate input", Classification: cl}
		res.Report.Timing = &Timing{PredictSeconds: res.PredictTime.Seconds(), RowsPerSecond: float64(d.Len()) / res.PredictTime.Seconds()}
		if _, ok := outputs[dlspec.OutputReport]; ok {
			if bufs[dlspec.OutputReport], err = res.Report.JSON(); err != nil {
				return nil, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, writeAll(outputs, bufs)
}

// predictionsCSV writes row,prediction,probability_0,…: row is the 0-based position in the
// input, prediction the most probable class, probabilities in float32's shortest form. With
// class labels (declared by the job), a label column follows prediction.
func predictionsCSV(probs []float64, classes int, labels []string) []byte {
	var b bytes.Buffer
	b.WriteString("row,prediction")
	if labels != nil {
		b.WriteString(",label")
	}
	for k := range classes {
		fmt.Fprintf(&b, ",probability_%d", k)
	}
	b.WriteByte('\n')
	for i, cl := range classOf(probs, classes) {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(',')
		b.WriteString(strconv.Itoa(cl))
		if labels != nil {
			b.WriteByte(',')
			b.WriteString(csvField(labels[cl]))
		}
		for _, v := range probs[i*classes : (i+1)*classes] {
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(float64(float32(v)), 'g', -1, 32))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// csvField quotes a field when CSV needs it (a declared label with a comma, quote or line
// break).
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\r\n") && strings.TrimSpace(s) == s {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
