package xgboost

/*
#include <stdlib.h>
#include <xgboost/c_api.h>
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// DMatrix is XGBoost's data matrix: rows × cols features, plus labels and weights.
type DMatrix struct {
	mu      sync.Mutex
	h       C.DMatrixHandle
	rows    int
	cols    int
	names   []string // feature names, if set
	cleanup runtime.Cleanup
}

// NewDMatrix copies a dense row-major matrix into XGBoost. NaN marks a missing value (XGBoost
// then follows each split's learned default direction); ±Inf is rejected because XGBoost would
// treat it as a real, extreme value. nthread ≤ 0 lets OpenMP choose.
func NewDMatrix(data []float32, rows, cols, nthread int) (*DMatrix, error) {
	if err := checkVersion(); err != nil {
		return nil, err
	}
	if err := checkMatrix(data, rows, cols); err != nil {
		return nil, err
	}
	var h C.DMatrixHandle
	nan := C.float(math.NaN())
	err := call("XGDMatrixCreateFromMat", func() C.int {
		return C.XGDMatrixCreateFromMat_omp((*C.float)(unsafe.Pointer(&data[0])), C.bst_ulong(rows), C.bst_ulong(cols), nan, &h, C.int(nthread))
	})
	if err != nil {
		return nil, err
	}
	d := &DMatrix{h: h, rows: rows, cols: cols}
	d.cleanup = runtime.AddCleanup(d, freeDMatrix, h)
	return d, nil
}

func freeDMatrix(h C.DMatrixHandle) { C.XGDMatrixFree(h) }

// Rows and Cols give the matrix shape.
func (d *DMatrix) Rows() int { return d.rows }
func (d *DMatrix) Cols() int { return d.cols }

// SetLabels sets one label per row.
func (d *DMatrix) SetLabels(labels []float32) error { return d.setFloatInfo("label", labels) }

// SetWeights sets one non-negative instance weight per row.
func (d *DMatrix) SetWeights(weights []float32) error {
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("xgboost: weight of row %d is %v; weights must be finite and non-negative", i, w)
		}
	}
	return d.setFloatInfo("weight", weights)
}

func (d *DMatrix) setFloatInfo(field string, v []float32) error {
	if len(v) != d.rows {
		return fmt.Errorf("xgboost: %d %ss for %d rows", len(v), field, d.rows)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("xgboost: %s of row %d is %v; it must be a finite number", field, i, x)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return ErrClosed
	}
	cf := C.CString(field)
	defer C.free(unsafe.Pointer(cf))
	err := call("XGDMatrixSetFloatInfo("+field+")", func() C.int {
		return C.XGDMatrixSetFloatInfo(d.h, cf, (*C.float)(unsafe.Pointer(&v[0])), C.bst_ulong(len(v)))
	})
	runtime.KeepAlive(v)
	return err
}

// SetFeatureNames names the columns; a booster trained on the matrix stores the names in its
// model, so Python sees them too.
func (d *DMatrix) SetFeatureNames(names []string) error {
	if len(names) != d.cols {
		return fmt.Errorf("xgboost: %d feature names for %d columns", len(names), d.cols)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return ErrClosed
	}
	arr, free := cStrings(names)
	defer free()
	field := C.CString("feature_name")
	defer C.free(unsafe.Pointer(field))
	err := call("XGDMatrixSetStrFeatureInfo", func() C.int {
		return C.XGDMatrixSetStrFeatureInfo(d.h, field, arr, C.bst_ulong(len(names)))
	})
	if err == nil {
		d.names = slices.Clone(names)
	}
	return err
}

// Close frees the matrix. It is safe to call more than once.
func (d *DMatrix) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return nil
	}
	d.cleanup.Stop()
	h := d.h
	d.h = nil
	return call("XGDMatrixFree", func() C.int { return C.XGDMatrixFree(h) })
}

// handle returns the live handle with d locked; the caller must call d.mu.Unlock.
func (d *DMatrix) lock() (C.DMatrixHandle, error) {
	d.mu.Lock()
	if d.h == nil {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	return d.h, nil
}

func (d *DMatrix) featureNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.names
}
