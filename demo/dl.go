package demo

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/modelfile"
	"github.com/ppml/ppml/engine/dl/dlspec"
)

// The dl engine's demo job: a small neural network (an MLP, one hidden layer of 16) trained on
// libtorch in the simulated TEE on the same encrypted breast cancer table as the ml step. It
// takes a second or so: the demo shows the chain, not a benchmark.
const (
	dlJobName = "tumour-network"
	dlHidden  = 16
	dlEpochs  = 30
	dlModel   = "out/tumour.pt.ppml"
)

func dlJob() *Job {
	return &Job{
		Name:    dlJobName,
		File:    "dl-job.yaml",
		Own:     true,
		Dataset: "breast_cancer.csv.ppml",
		Manifest: func(je JobEnv) ([]byte, error) {
			return []byte(fmt.Sprintf(`# The ppml demo's deep-learning job: a small neural network (malignant or benign) on libtorch.
version: 1
name: %[5]s
engine: %[6]s
inputs:
  train:
    path: breast_cancer.csv.ppml
    key: %[1]s
outputs:
  %[3]s:
    path: %[9]s
    key: %[2]s
parameters:
  task: train
  model: mlp
  hidden: [%[7]d]
  label: %[4]s
  optimizer: adam
  learning_rate: 0.01
  epochs: %[8]d
  batch_size: 32
  test_fraction: 0.2
  seed: 42
resources:
  memory: 512MiB
  threads: 1
`, je.InputKey, je.OutputKey, modelOutput, trainLabel, dlJobName, dlspec.Name, dlHidden, dlEpochs, dlModel)), nil
		},
	}
}

// DLStep is what the deep-learning step established: the decrypted network's description
// and metrics (not the network itself).
type DLStep struct {
	JobDigest         string             `json:"job_digest"`
	Architecture      arch.Config        `json:"architecture"`
	Label             string             `json:"label"`
	Features          int                `json:"features"`
	TrainingJobDigest string             `json:"training_job_digest"`
	Metrics           *modelfile.Metrics `json:"metrics"`
	OwnerAccuracy     float64            `json:"owner_accuracy"` // the owner's forward pass over every row
	OwnerRows         int                `json:"owner_rows"`
	EpochLoss         []float64          `json:"epoch_loss"`
}

// Step 9.
func (e *env) dlStep(ctx context.Context, st *Step) error {
	j, err := e.jobNamed(dlJobName)
	if err != nil {
		return err
	}
	st.detail("job %s (dl engine on libtorch, digest %s…): an MLP (30 → %d → 2, ReLU), Adam, %d epochs of batches of 32, one thread, seed 42, 20%% of the rows held out, on %s — the ciphertext of the previous step",
		e.rel(j.path), j.digest[:23], dlHidden, dlEpochs, j.Dataset)
	plain, err := e.runOwn(ctx, st, j)
	if err != nil {
		return err
	}
	defer clear(plain)
	// The owner reads the decrypted model as data: dl/modelfile takes its tensors and metadata
	// out of the TorchScript archive without running anything in it.
	mf, err := modelfile.DecodeModel(plain, "")
	if err != nil {
		return fmt.Errorf("the decrypted model: %w", err)
	}
	m := mf.Meta
	if m.TrainingJobDigest != j.digest {
		return fmt.Errorf("the model records training job %q, the owner approved %s", m.TrainingJobDigest, j.digest)
	}
	c := m.Architecture
	if c.Kind != arch.MLP || c.Classes != 2 || m.Input.Kind != modelfile.InputTable || len(m.Input.Features) != 30 || m.Label != trainLabel {
		return fmt.Errorf("the model is a %s of %d classes on %s input with %d features and label %q, want an mlp of 2 on a table of 30 with %s",
			c.Kind, c.Classes, m.Input.Kind, len(m.Input.Features), m.Label, trainLabel)
	}
	mt := m.Metrics
	if mt == nil || mt.Classification == nil || mt.TestRows == 0 || m.Training == nil {
		return errors.New("the model records no training or classification metrics over the held-out rows")
	}
	cl := mt.Classification
	if cl.Accuracy < MinAccuracy {
		return fmt.Errorf("test accuracy %.3f, want at least %.2f", cl.Accuracy, MinAccuracy)
	}
	// The owner uses the network without libtorch: its forward pass in plain Go, from the
	// decrypted tensors, over the owner's plaintext copy of every row.
	acc, rows, err := mlpAccuracy(mf, BreastCancerCSV)
	if err != nil {
		return fmt.Errorf("the owner's forward pass: %w", err)
	}
	if acc < MinAccuracy {
		return fmt.Errorf("the owner's forward pass: accuracy %.3f on all %d rows, want at least %.2f", acc, rows, MinAccuracy)
	}
	e.sum.DL = &DLStep{JobDigest: j.digest, Architecture: c, Label: m.Label, Features: len(m.Input.Features),
		TrainingJobDigest: m.TrainingJobDigest, Metrics: mt, OwnerAccuracy: acc, OwnerRows: rows, EpochLoss: m.Training.EpochLoss}
	st.detail("the decrypted model: a TorchScript archive (torch.jit.load reads it) with ppml's metadata, read by the owner as data only: mlp %v → %d classes, %d parameters, label %s",
		append([]int{c.Inputs}, c.Hidden...), c.Classes, c.NumParams(), m.Label)
	st.detail("recorded training job digest %s — the job the policy approved; epoch loss %.4f → %.4f",
		m.TrainingJobDigest, m.Training.EpochLoss[0], m.Training.EpochLoss[len(m.Training.EpochLoss)-1])
	st.detail("metrics on %d held-out tumours: accuracy %.4f, log-loss %.4f", mt.TestRows, cl.Accuracy, cl.LogLoss)
	st.detail("the owner runs the network's forward pass in plain Go from the decrypted tensors on its plaintext copy of all %d rows: accuracy %.4f", rows, acc)
	st.fact("dl_job_digest", j.digest)
	st.fact("dl_accuracy", strconv.FormatFloat(cl.Accuracy, 'f', 4, 64))
	return nil
}

// mlpAccuracy runs an MLP's forward pass — (x − mean) / std, then linear layers with ReLU
// between — from the model's tensors on a CSV table with the model's feature and label
// columns, and returns the share of rows whose most probable class is the label.
func mlpAccuracy(mf *modelfile.Model, table []byte) (float64, int, error) {
	m := mf.Meta
	ts := map[string][]float32{}
	for _, t := range mf.Tensors {
		ts[t.Name] = t.Data
	}
	recs, err := csv.NewReader(bytes.NewReader(table)).ReadAll()
	if err != nil || len(recs) < 2 {
		return 0, 0, fmt.Errorf("the table: %v", err)
	}
	cols := make([]int, len(m.Input.Features))
	for i, f := range m.Input.Features {
		if cols[i] = slices.Index(recs[0], f); cols[i] < 0 {
			return 0, 0, fmt.Errorf("the table has no column %q", f)
		}
	}
	label := slices.Index(recs[0], m.Label)
	if label < 0 {
		return 0, 0, fmt.Errorf("the table has no column %q", m.Label)
	}
	widths := append(append([]int{m.Architecture.Inputs}, m.Architecture.Hidden...), m.Architecture.Classes)
	right := 0
	for _, r := range recs[1:] {
		x := make([]float64, len(cols))
		for i, c := range cols {
			v, err := strconv.ParseFloat(r[c], 64)
			if err != nil {
				return 0, 0, fmt.Errorf("column %s: %v", m.Input.Features[i], err)
			}
			x[i] = (float64(float32(v)) - float64(ts["mean"][i])) / float64(ts["std"][i])
		}
		for l := 1; l < len(widths); l++ {
			w, b := ts[fmt.Sprintf("fc%d.weight", l)], ts[fmt.Sprintf("fc%d.bias", l)]
			y := make([]float64, widths[l])
			for o := range y {
				s := float64(b[o])
				for i, v := range x {
					s += float64(w[o*widths[l-1]+i]) * v
				}
				if l < len(widths)-1 {
					s = math.Max(s, 0)
				}
				y[o] = s
			}
			x = y
		}
		want, err := strconv.Atoi(r[label])
		if err != nil {
			return 0, 0, fmt.Errorf("label %q: %v", r[label], err)
		}
		if slices.Index(x, slices.Max(x)) == want {
			right++
		}
	}
	n := len(recs) - 1
	return float64(right) / float64(n), n, nil
}
