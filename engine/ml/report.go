package mlengine

import (
	"fmt"
	"io"
	"strings"

	"github.com/ppml/ppml/engine/ml/mlspec"
)

// WriteText prints a report for people: the model and its metrics.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, objective %s", r.Task, r.Algorithm, r.Objective)
	if r.Classes > 0 {
		fmt.Fprintf(&b, " (%d classes)", r.Classes)
	}
	feats := strings.Join(r.Features, ", ")
	if len(r.Features) > 13 {
		feats = strings.Join(r.Features[:10], ", ") + ", …"
	}
	fmt.Fprintf(&b, "\nlabel %s, %d features: %s\n", r.Label, len(r.Features), feats)
	if r.TrainingJobDigest != "" {
		fmt.Fprintf(&b, "training job %s\n", r.TrainingJobDigest)
	}
	m := r.Metrics
	switch {
	case m == nil:
		b.WriteString("no test split: no metrics\n")
	default:
		if r.Task == mlspec.Train {
			fmt.Fprintf(&b, "trained on %d rows; metrics on %d held-out rows (test_fraction %g, seed %d)\n", m.TrainRows, m.TestRows, m.TestFraction, m.Seed)
		} else {
			fmt.Fprintf(&b, "metrics on %d rows\n", m.TestRows)
		}
		if g := m.Regression; g != nil {
			fmt.Fprintf(&b, "  RMSE %.6g\n  MAE  %.6g\n  R²   %.6g\n", g.RMSE, g.MAE, g.R2)
		}
		if c := m.Classification; c != nil {
			fmt.Fprintf(&b, "  accuracy %.6g\n", c.Accuracy)
			if c.AUC != nil {
				fmt.Fprintf(&b, "  AUC      %.6g\n", *c.AUC)
			}
			fmt.Fprintf(&b, "  log-loss %.6g\n  confusion matrix (rows: true class, columns: predicted):\n", c.LogLoss)
			for i, row := range c.Confusion {
				fmt.Fprintf(&b, "    %d:", i)
				for _, n := range row {
					fmt.Fprintf(&b, " %6d", n)
				}
				b.WriteString("\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
