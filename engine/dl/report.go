package dlengine

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/engine/dl/dlspec"
)

// Report is what a train job writes to its report output and an evaluate job to its report
// output: the model, how it was trained, its metrics and how long the work took.
type Report struct {
	Task              dlspec.Task `json:"task"`
	Architecture      arch.Config `json:"architecture"`
	Input             InputSpec   `json:"input"`
	Label             string      `json:"label,omitempty"`
	Training          *Training   `json:"training,omitempty"`
	Metrics           *Metrics    `json:"metrics,omitempty"`
	TrainingJobDigest string      `json:"training_job_digest,omitempty"`
	Timing            *Timing     `json:"timing,omitempty"`
}

// Timing of the job's work (not in model files: they do not depend on the machine).
type Timing struct {
	TrainSeconds       float64 `json:"train_seconds,omitempty"`
	TrainCPUSeconds    float64 `json:"train_cpu_seconds,omitempty"`
	TestPredictSeconds float64 `json:"test_predict_seconds,omitempty"`
	PredictSeconds     float64 `json:"predict_seconds,omitempty"`
	RowsPerSecond      float64 `json:"rows_per_second,omitempty"`
}

func reportOf(t dlspec.Task, m *Meta) *Report {
	return &Report{Task: t, Architecture: m.Architecture, Input: m.Input, Label: m.Label, Training: m.Training,
		Metrics: m.Metrics, TrainingJobDigest: m.TrainingJobDigest}
}

// JSON is the report as written to the report output.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("dl job: report: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteText prints a report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Architecture
	fmt.Fprintf(&b, "%s: %s, %d classes", r.Task, c.Kind, c.Classes)
	if r.TrainingJobDigest != "" {
		fmt.Fprintf(&b, "\ntraining job %s", r.TrainingJobDigest)
	}
	b.WriteString("\n")
	if t := r.Training; t != nil && r.Task == dlspec.Train {
		fmt.Fprintf(&b, "trained on %d rows: %d epochs, batches of %d, %s learning rate %g, seed %d\n",
			t.TrainRows, t.Epochs, t.BatchSize, t.Optimizer, t.LearningRate, t.Seed)
		for i, l := range t.EpochLoss {
			fmt.Fprintf(&b, "  epoch %d: mean loss %.4f\n", i+1, l)
		}
	}
	if m := r.Metrics; m != nil && m.Classification != nil {
		cl := m.Classification
		fmt.Fprintf(&b, "metrics on %d rows (%s)\n  accuracy %.4f\n", m.TestRows, m.Source, cl.Accuracy)
		if cl.AUC != nil {
			fmt.Fprintf(&b, "  AUC      %.4f\n", *cl.AUC)
		}
		fmt.Fprintf(&b, "  log-loss %.4f\n", cl.LogLoss)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
