package dlengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/text"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/engine/dl/dlspec"
	"github.com/ppml/ppml/ml/split"
)

// trainData is the training and test data of a train job, with the model's input spec.
type trainData struct {
	train, test train.Data
	input       InputSpec
	label       string
	vocabulary  []string
	testSource  string
	inputs      int // mlp: features or pixels
	done        func()
}

func loadTrainData(p *dlspec.Params, inputs map[string]Input, b *budget) (*trainData, error) {
	td := &trainData{done: func() {}}
	if p.Images {
		labels := inputs[dlspec.InputLabels]
		tr, done, err := images(inputs[dlspec.InputImages], &labels, dlspec.InputImages, dlspec.InputLabels, b)
		if err != nil {
			return nil, err
		}
		td.train, td.done = tr, done
		h, w := tr.Size()
		td.input = InputSpec{Kind: InputImages, Height: h, Width: w}
		td.inputs = h * w
		if p.Model == arch.LeNet5 && (h != arch.ImageSize || w != arch.ImageSize) {
			done()
			return nil, fmt.Errorf("input images: lenet5 reads %d × %d images, these are %d × %d", arch.ImageSize, arch.ImageSize, h, w)
		}
		if ti, ok := inputs[dlspec.InputTestImages]; ok {
			tl := inputs[dlspec.InputTestLabels]
			te, tdone, err := images(ti, &tl, dlspec.InputTestImages, dlspec.InputTestLabels, b)
			if err != nil {
				done()
				return nil, err
			}
			if th, tw := te.Size(); th != h || tw != w {
				done()
				tdone()
				return nil, fmt.Errorf("input test_images: %d × %d images, the training images are %d × %d", th, tw, h, w)
			}
			td.test, td.testSource = te, "test inputs"
			td.done = func() { done(); tdone() }
		}
		return td, nil
	}

	name := dlspec.InputTrain
	in, ok := inputs[name]
	if !ok {
		name = dlspec.InputData
		in = inputs[name]
	}
	var all train.Data
	switch p.Model {
	case arch.Text:
		t, err := textTable(in, name, p.Text, p.Label, b)
		if err != nil {
			return nil, err
		}
		trIdx, teIdx, err := splitRows(len(t.Texts), p)
		if err != nil {
			return nil, err
		}
		pick := func(idx []int) ([]string, []int64) {
			var s []string
			var y []int64
			for _, i := range idx {
				s, y = append(s, t.Texts[i]), append(y, t.Labels[i])
			}
			return s, y
		}
		trTexts, trY := pick(trIdx)
		// The vocabulary comes from the training rows only: the test rows stay unseen.
		v, err := text.Build(trTexts, p.VocabSize, p.MaxTokens)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		td.vocabulary = v.Words
		if td.train, err = encodeTexts(v, trTexts, trY, p.MaxTokens, b); err != nil {
			return nil, err
		}
		if teIdx != nil {
			teTexts, teY := pick(teIdx)
			if td.test, err = encodeTexts(v, teTexts, teY, p.MaxTokens, b); err != nil {
				return nil, err
			}
		}
		td.input = InputSpec{Kind: InputText, TextColumn: p.Text, MaxTokens: p.MaxTokens}
		td.label = p.Label
	default:
		d, err := numericTable(in, name, p.Features, p.Label, b)
		if err != nil {
			return nil, err
		}
		rows, err := rowsOf(d, b)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		all = rows
		trIdx, teIdx, err := splitRows(rows.Len(), p)
		if err != nil {
			return nil, err
		}
		sub := func(idx []int) *train.Rows {
			r := &train.Rows{Features: rows.Features}
			for _, i := range idx {
				r.X = append(r.X, rows.X[i*rows.Features:(i+1)*rows.Features]...)
				r.Y = append(r.Y, rows.Y[i])
			}
			return r
		}
		td.train = all
		if teIdx != nil {
			if err := b.reserve("split rows", int64(len(rows.X))*4+int64(rows.Len())*8); err != nil {
				return nil, err
			}
			td.train, td.test = sub(trIdx), sub(teIdx)
		}
		td.input = InputSpec{Kind: InputTable, Features: d.X.Names}
		td.inputs = rows.Features
		td.label = p.Label
	}
	if p.TestFraction > 0 {
		td.testSource = fmt.Sprintf("test_fraction %g, seed %d", p.TestFraction, p.Seed)
	}
	return td, nil
}

// splitRows is the seeded train/test split of a table (all rows train without a test fraction).
func splitRows(n int, p *dlspec.Params) ([]int, []int, error) {
	if p.TestFraction == 0 {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all, nil, nil
	}
	tr, te, err := split.TrainTest(n, p.TestFraction, p.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("dl job: %w", err)
	}
	return tr, te, nil
}

func runTrain(ctx context.Context, cfg Config, p *dlspec.Params, inputs map[string]Input, outputs map[string]Output, b *budget) (*Result, error) {
	td, err := loadTrainData(p, inputs, b)
	if err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	defer td.done()
	labels := td.train.Labels()
	classes := p.Classes
	if classes == 0 {
		classes = int(slices.Max(labels)) + 1
		if classes < 2 {
			return nil, errors.New("dl job: the training labels hold a single class; a classifier needs at least two")
		}
	}
	if err := checkLabels(labels, classes, "training labels"); err != nil {
		return nil, fmt.Errorf("dl job: %w (set classes to the number of classes)", err)
	}
	if td.test != nil {
		if err := checkLabels(td.test.Labels(), classes, "test labels"); err != nil {
			return nil, fmt.Errorf("dl job: %w", err)
		}
	}
	c := arch.Config{Kind: p.Model, Classes: classes}
	switch p.Model {
	case arch.MLP:
		c.Inputs, c.Hidden = td.inputs, p.Hidden
	case arch.Text:
		c.VocabSize, c.EmbeddingDim = len(td.vocabulary), p.EmbeddingDim
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	tensors := c.Init(p.Seed)
	if p.Model == arch.LeNet5 {
		// LeNet-5 standardizes its input with the training pixels' mean and standard deviation,
		// kept in the model as scalar buffers.
		mean, std, err := td.train.(*train.Images).PixelStats()
		if err != nil {
			return nil, fmt.Errorf("dl job: %w", err)
		}
		for i := range tensors {
			switch tensors[i].Name {
			case "input_mean":
				tensors[i].Data = []float32{mean}
			case "input_std":
				tensors[i].Data = []float32{std}
			}
		}
	}
	if p.Model == arch.MLP {
		// The MLP standardizes its input with the training data's statistics, kept in the
		// model as buffers.
		var mean, std []float32
		switch d := td.train.(type) {
		case *train.Images:
			mean, std, err = d.Stats()
		case *train.Rows:
			mean, std, err = d.Stats()
		}
		if err != nil {
			return nil, fmt.Errorf("dl job: %w", err)
		}
		for i := range tensors {
			switch tensors[i].Name {
			case "mean":
				tensors[i].Data = mean
			case "std":
				tensors[i].Data = std
			}
		}
	}
	cfg.Logf("dl engine: training %s (%d classes, %d parameters) on %d rows, %d epochs of batches of %d, %d thread(s)",
		c.Kind, c.Classes, c.NumParams(), td.train.Len(), p.Epochs, p.BatchSize, cfg.Threads)
	m, err := train.NewModel(c, tensors, cfg.Threads)
	if err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	defer m.Close()
	opt := torch.Optimizer{Kind: torch.SGD, LR: p.LearningRate, Momentum: p.Momentum, WeightDecay: p.WeightDecay}
	if p.Optimizer == dlspec.Adam {
		opt = torch.Optimizer{Kind: torch.Adam, LR: p.LearningRate, WeightDecay: p.WeightDecay}
	}
	if err := m.SetOptimizer(opt); err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	res := &Result{Task: dlspec.Train, Rows: td.train.Len()}
	var step *train.StepLR
	if p.LRStepEpochs > 0 {
		step = &train.StepLR{Base: p.LearningRate, Every: p.LRStepEpochs, Gamma: p.LRGamma}
	}
	fit, err := train.Fit(ctx, m, td.train, train.Options{Epochs: p.Epochs, BatchSize: p.BatchSize, Seed: p.Seed, Step: step,
		Progress: func(epoch, batch, batches int, _ float64) {
			if batch == batches {
				cfg.Logf("dl engine: epoch %d of %d done", epoch, p.Epochs)
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	res.TrainTime, res.TrainCPU = fit.Time, fit.CPU
	meta := &Meta{Format: MetaFormat, Version: MetaVersion, Architecture: c, Input: td.input, Label: td.label,
		Vocabulary: td.vocabulary, TrainingJobDigest: cfg.JobDigest, TorchVersion: torch.Version(),
		Training: &Training{Optimizer: p.Optimizer, LearningRate: p.LearningRate, Momentum: p.Momentum,
			WeightDecay: p.WeightDecay, Epochs: p.Epochs, LRStepEpochs: p.LRStepEpochs, LRGamma: p.LRGamma, BatchSize: p.BatchSize, Seed: p.Seed, Threads: cfg.Threads,
			TrainRows: td.train.Len(), EpochLoss: fit.EpochLoss}}
	if td.test != nil {
		probs, err := predictTimed(ctx, m, td.test, classes, p.BatchSize, res)
		if err != nil {
			return nil, fmt.Errorf("dl job: test metrics: %w", err)
		}
		cl, err := score(td.test.Labels(), probs, classes)
		if err != nil {
			return nil, fmt.Errorf("dl job: test metrics: %w", err)
		}
		meta.Metrics = &Metrics{TestRows: td.test.Len(), Source: td.testSource, Classification: cl}
	}
	metaJSON, err := encodeMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("dl job: %w", err)
	}
	bufs := map[string][]byte{}
	if bufs[dlspec.OutputModel], err = m.Save(map[string][]byte{MetaFile: metaJSON}); err != nil {
		return nil, fmt.Errorf("dl job: save model: %w", err)
	}
	if _, ok := outputs[dlspec.OutputStateDict]; ok {
		ts, err := train.Tensors(m, c)
		if err != nil {
			return nil, fmt.Errorf("dl job: state dict: %w", err)
		}
		var sd bytes.Buffer
		if err := writeStateDict(&sd, ts, metaJSON); err != nil {
			return nil, fmt.Errorf("dl job: state dict: %w", err)
		}
		bufs[dlspec.OutputStateDict] = sd.Bytes()
	}
	res.Report = reportOf(dlspec.Train, meta)
	res.Report.Timing = &Timing{TrainSeconds: res.TrainTime.Seconds(), TrainCPUSeconds: res.TrainCPU.Seconds(), TestPredictSeconds: res.PredictTime.Seconds()}
	if _, ok := outputs[dlspec.OutputReport]; ok {
		if bufs[dlspec.OutputReport], err = res.Report.JSON(); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, writeAll(outputs, bufs)
}
