package xgboost

/*
#include <stdlib.h>
#include <xgboost/c_api.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// Booster is an XGBoost learner. Its methods are safe for concurrent use (they serialize on the
// booster).
//
// XGBoost 1.7 keeps a learner's prediction cache — including the training matrix registered by
// XGBoosterCreate — in thread-local storage keyed by the learner, and frees it only on the
// thread that frees the learner. A goroutine that moved between OS threads would configure a
// learner that sees no training data ("0 feature is supplied") and leave cache entries behind on
// other threads. So every booster has its own OS thread: all of its C calls run there, and the
// thread exits after the booster is freed, which releases whatever XGBoost kept in it.
type Booster struct {
	mu      sync.Mutex
	h       C.BoosterHandle
	w       *worker
	cleanup runtime.Cleanup
	// inCollective is set while Collective.Finish runs (AllreduceSum).
	inCollective bool
}

// worker is a goroutine locked to its own OS thread that runs functions sent to it.
type worker struct{ reqs chan func() }

func newWorker() *worker {
	w := &worker{reqs: make(chan func())}
	go func() {
		// Never unlocked: when the loop ends the goroutine exits locked, and Go then ends the
		// OS thread instead of reusing it.
		runtime.LockOSThread()
		for f := range w.reqs {
			f()
		}
	}()
	return w
}

func (w *worker) do(f func()) {
	done := make(chan struct{})
	w.reqs <- func() { f(); close(done) }
	<-done
}

// freeOnWorker frees the learner on its own thread, then ends the thread.
func freeOnWorker(h C.BoosterHandle, w *worker) error {
	var err error
	w.do(func() { err = call("XGBoosterFree", func() C.int { return C.XGBoosterFree(h) }) })
	close(w.reqs)
	return err
}

type boosterState struct {
	h C.BoosterHandle
	w *worker
}

// run executes a C call for b on b's thread, with b locked.
func (b *Booster) run(op string, fn func(h C.BoosterHandle) C.int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return ErrClosed
	}
	var err error
	b.w.do(func() { err = call(op, func() C.int { return fn(b.h) }) })
	return err
}

func newBooster(cache []*DMatrix) (*Booster, error) {
	if err := checkVersion(); err != nil {
		return nil, err
	}
	// The same matrix twice would deadlock on its lock below (and XGBoost caches it once anyway).
	var uniq []*DMatrix
	for _, d := range cache {
		if !slices.Contains(uniq, d) {
			uniq = append(uniq, d)
		}
	}
	cache = uniq
	var arr *C.DMatrixHandle
	if len(cache) > 0 {
		arr = (*C.DMatrixHandle)(C.malloc(C.size_t(len(cache)) * C.size_t(unsafe.Sizeof(C.DMatrixHandle(nil)))))
		defer C.free(unsafe.Pointer(arr))
		hs := unsafe.Slice(arr, len(cache))
		for i, d := range cache {
			h, err := d.lock()
			if err != nil {
				return nil, err
			}
			defer d.mu.Unlock()
			hs[i] = h
		}
	}
	var h C.BoosterHandle
	w := newWorker()
	var err error
	w.do(func() {
		err = call("XGBoosterCreate", func() C.int { return C.XGBoosterCreate(arr, C.bst_ulong(len(cache)), &h) })
	})
	if err != nil {
		close(w.reqs)
		return nil, err
	}
	b := &Booster{h: h, w: w}
	b.cleanup = runtime.AddCleanup(b, func(s boosterState) { freeOnWorker(s.h, s.w) }, boosterState{h, w})
	// Without validate_parameters XGBoost says nothing about parameter names it ignores.
	if err := b.SetParam("validate_parameters", "1"); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// NewBooster makes an untrained booster that caches the given matrices (typically the training
// matrix).
func NewBooster(cache ...*DMatrix) (*Booster, error) { return newBooster(cache) }

// SetParam sets one parameter by XGBoost's name. XGBoost checks names only when it next
// configures (the first UpdateOneIter or Predict), and that call then fails for a name no part
// of the learner uses.
func (b *Booster) SetParam(name, value string) error {
	cn, cv := C.CString(name), C.CString(value)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cv))
	return b.run("XGBoosterSetParam("+name+")", func(h C.BoosterHandle) C.int { return C.XGBoosterSetParam(h, cn, cv) })
}

// UpdateOneIter runs boosting round iter on dtrain (which must carry labels).
func (b *Booster) UpdateOneIter(iter int, dtrain *DMatrix) error {
	dh, err := dtrain.lock()
	if err != nil {
		return err
	}
	defer dtrain.mu.Unlock()
	return b.run("XGBoosterUpdateOneIter", func(h C.BoosterHandle) C.int { return C.XGBoosterUpdateOneIter(h, C.int(iter), dh) })
}

// NumFeatures is the number of features the model was trained on.
func (b *Booster) NumFeatures() (int, error) {
	var n C.bst_ulong
	err := b.run("XGBoosterGetNumFeature", func(h C.BoosterHandle) C.int { return C.XGBoosterGetNumFeature(h, &n) })
	return int(n), err
}

// BoostedRounds is the number of boosting rounds in the model.
func (b *Booster) BoostedRounds() (int, error) {
	var n C.int
	err := b.run("XGBoosterBoostedRounds", func(h C.BoosterHandle) C.int { return C.XGBoosterBoostedRounds(h, &n) })
	return int(n), err
}

// SetFeatureNames stores feature names in the model (Train copies them from the training
// matrix, as Python's Booster does).
func (b *Booster) SetFeatureNames(names []string) error {
	arr, free := cStrings(names)
	defer free()
	field := C.CString("feature_name")
	defer C.free(unsafe.Pointer(field))
	return b.run("XGBoosterSetStrFeatureInfo", func(h C.BoosterHandle) C.int {
		return C.XGBoosterSetStrFeatureInfo(h, field, arr, C.bst_ulong(len(names)))
	})
}

// FeatureNames returns the feature names stored in the model (empty if it has none).
func (b *Booster) FeatureNames() ([]string, error) {
	field := C.CString("feature_name")
	defer C.free(unsafe.Pointer(field))
	var names []string
	err := b.run("XGBoosterGetStrFeatureInfo", func(h C.BoosterHandle) C.int {
		var n C.bst_ulong
		var arr **C.char
		if rc := C.XGBoosterGetStrFeatureInfo(h, field, &n, &arr); rc != 0 {
			return rc
		}
		for _, s := range unsafe.Slice(arr, int(n)) {
			names = append(names, C.GoString(s))
		}
		return 0
	})
	return names, err
}

// Prediction holds XGBoost's output: Values in row-major order with the given Shape — (rows) for
// regression and binary classification, (rows, classes) for multi:softprob.
type Prediction struct {
	Values []float32
	Shape  []int
}

// Predict runs normal (transformed, not margin) prediction with all trees. The matrix must have
// exactly the model's number of features: XGBoost itself accepts fewer columns and would read
// the missing ones as missing values, which silently changes the answers.
func (b *Booster) Predict(d *DMatrix) (*Prediction, error) {
	nf, err := b.NumFeatures()
	if err != nil {
		return nil, err
	}
	if nf != d.Cols() {
		return nil, fmt.Errorf("xgboost: model expects %d features, the data has %d", nf, d.Cols())
	}
	dh, err := d.lock()
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	cfg := C.CString(`{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false}`)
	defer C.free(unsafe.Pointer(cfg))
	p := &Prediction{}
	err = b.run("XGBoosterPredictFromDMatrix", func(h C.BoosterHandle) C.int {
		var shape *C.bst_ulong
		var dim C.bst_ulong
		var out *C.float
		if rc := C.XGBoosterPredictFromDMatrix(h, dh, cfg, &shape, &dim, &out); rc != 0 {
			return rc
		}
		// Both buffers belong to XGBoost and are reused by its next call: copy now.
		n := 1
		for _, s := range unsafe.Slice(shape, int(dim)) {
			p.Shape = append(p.Shape, int(s))
			n *= int(s)
		}
		p.Values = make([]float32, n)
		if n > 0 {
			copy(p.Values, unsafe.Slice((*float32)(unsafe.Pointer(out)), n))
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SaveJSON returns the model in XGBoost's JSON model format (what Python's save_model writes to a
// .json file).
func (b *Booster) SaveJSON() ([]byte, error) {
	cfg := C.CString(`{"format": "json"}`)
	defer C.free(unsafe.Pointer(cfg))
	var out []byte
	err := b.run("XGBoosterSaveModelToBuffer", func(h C.BoosterHandle) C.int {
		var n C.bst_ulong
		var p *C.char
		if rc := C.XGBoosterSaveModelToBuffer(h, cfg, &n, &p); rc != 0 {
			return rc
		}
		out = C.GoBytes(unsafe.Pointer(p), C.int(n))
		return 0
	})
	return out, err
}

// Config returns XGBoost's JSON dump of the learner configuration (all parameters in force).
func (b *Booster) Config() ([]byte, error) {
	var out []byte
	err := b.run("XGBoosterSaveJsonConfig", func(h C.BoosterHandle) C.int {
		var n C.bst_ulong
		var p *C.char
		if rc := C.XGBoosterSaveJsonConfig(h, &n, &p); rc != 0 {
			return rc
		}
		out = C.GoBytes(unsafe.Pointer(p), C.int(n))
		return 0
	})
	return out, err
}

// LoadJSON loads a model in XGBoost's JSON format from untrusted bytes. The document is checked
// and re-encoded first (see ValidateModelJSON) because XGBoost trusts what it loads: a tree whose
// child index points outside the tree would make prediction read out of bounds. nthread sets
// the booster's thread count for prediction (≤ 0: OpenMP's choice).
func LoadJSON(model []byte, nthread int) (*Booster, error) {
	canon, _, err := ValidateModelJSON(model)
	if err != nil {
		return nil, err
	}
	b, err := newBooster(nil)
	if err != nil {
		return nil, err
	}
	buf := C.CBytes(canon)
	defer C.free(buf)
	err = b.run("XGBoosterLoadModelFromBuffer", func(h C.BoosterHandle) C.int {
		return C.XGBoosterLoadModelFromBuffer(h, buf, C.bst_ulong(len(canon)))
	})
	if err == nil && nthread > 0 {
		err = b.SetParam("nthread", fmt.Sprint(nthread))
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close frees the booster and ends its thread. It is safe to call more than once.
func (b *Booster) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return nil
	}
	b.cleanup.Stop()
	h := b.h
	b.h = nil
	return freeOnWorker(h, b.w)
}
