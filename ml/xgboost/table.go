package xgboost

import (
	"fmt"

	"github.com/ppml/ppml/ml/table"
)

// NewDMatrixFromDataset builds a DMatrix from a dataset: its features (NaN = missing), their
// names, and its labels when it has them.
func NewDMatrixFromDataset(d *table.Dataset, nthread int) (*DMatrix, error) {
	m, err := NewDMatrix(d.X.RowMajor32(), d.X.NumRows(), len(d.X.Names), nthread)
	if err != nil {
		return nil, err
	}
	if err := m.SetFeatureNames(d.X.Names); err != nil {
		m.Close()
		return nil, err
	}
	if d.Y != nil {
		labels := make([]float32, len(d.Y))
		for i, v := range d.Y {
			labels[i] = float32(v)
		}
		if err := m.SetLabels(labels); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// PredictTable predicts for a table. A model that stores feature names takes its columns by
// name, so column order does not matter and a missing feature is reported by name; a model
// without names takes the table's columns in order and needs exactly its feature count.
func (b *Booster) PredictTable(t *table.Table, nthread int) (*Prediction, error) {
	names, err := b.FeatureNames()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		if t, err = t.Select(names...); err != nil {
			return nil, fmt.Errorf("xgboost: %w", err)
		}
	}
	m, err := NewDMatrix(t.RowMajor32(), t.NumRows(), len(t.Names), nthread)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return b.Predict(m)
}
