package mlengine

import (
	"fmt"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/table"
	"github.com/ppml/ppml/ml/xgboost"
)

// heldOut is what the workers of a distributed train job hold out, put
// together: every worker's test rows in worker order (worker 0's first),
// their labels and the model's predictions, so that every metric —
// AUC included, which is not a sum of per-worker parts — is computed by
// the same code, on the same values in the same order, as a single
// process would compute it on those rows.
type heldOut struct {
	y         []float64
	pred      *predictions // every worker's test rows
	own       *predictions // this worker's
	trainRows int          // over all workers
}

// gatherHeldOut predicts this worker's test rows with the model just
// trained and gathers every worker's labels and predictions through two
// sums over the collective: first each worker's test and train row counts
// (each in its own slot), then a buffer in which each worker fills the
// slots of its rows and leaves the others zero, which makes the sums exact
// copies. Every worker ends with the same values; what crosses between
// them (labels and predictions of held-out rows) stays inside the job's
// attested tunnels.
func gatherHeldOut(b *xgboost.Booster, w *Worker, xp *xgbPredictor, test *table.Dataset, trainRows int) (*heldOut, error) {
	own, err := xp.predict(test.X)
	if err != nil {
		return nil, fmt.Errorf("ml job: predict test rows: %w", err)
	}
	per := 1
	if xp.obj == mlspec.Multiclass {
		per = xp.classes
	}
	n := w.Workers
	counts := make([]float64, 2*n)
	counts[w.Rank], counts[n+w.Rank] = float64(len(test.Y)), float64(trainRows)
	if err := b.AllreduceSum(counts); err != nil {
		return nil, fmt.Errorf("ml job: count the workers' held-out rows: %w", err)
	}
	total, offset, trained := 0, 0, 0
	for i := range n {
		if i == w.Rank {
			offset = total
		}
		total += int(counts[i])
		trained += int(counts[n+i])
	}
	if int(counts[w.Rank]) != len(test.Y) {
		return nil, fmt.Errorf("ml job: the workers counted %v held-out rows for worker %d, which holds %d", counts[w.Rank], w.Rank, len(test.Y))
	}
	buf := make([]float64, total*(1+per))
	copy(buf[offset:], test.Y)
	copy(buf[total+offset*per:], own.values)
	if err := b.AllreduceSum(buf); err != nil {
		return nil, fmt.Errorf("ml job: gather the workers' held-out predictions: %w", err)
	}
	return &heldOut{y: buf[:total], own: own, trainRows: trained,
		pred: &predictions{obj: own.obj, classes: own.classes, values: buf[total:], bits: own.bits}}, nil
}
