package torch

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/ppml/ppml/internal/osthread"
)

// MaxDims is the largest tensor rank the shim passes.
const MaxDims = C.PPML_MAX_DIMS

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("torch: model already closed")

// Param is one named tensor of a model: "weight" on the root module or "conv1.weight" on
// submodule conv1. A Buffer is saved with the model but not trained (e.g. input statistics).
type Param struct {
	Name   string
	Shape  []int64
	Data   []float32
	Buffer bool
}

// Submodule is a child module: its attribute name and its TorchScript class name.
type Submodule struct {
	Name  string
	Class string
}

// Spec describes a model to build: the root class name ("__torch__.LeNet5"), the submodules,
// the tensors with their initial values, and the TorchScript source of the root's methods.
type Spec struct {
	Class      string
	Submodules []Submodule
	Params     []Param
	Source     string
}

// Numel is the number of elements a shape holds (-1 for a negative or overflowing shape).
func Numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || d > 0 && n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

func (s *Spec) check() error {
	if s.Class == "" || s.Source == "" {
		return errors.New("torch: model spec needs a class and a source")
	}
	for _, p := range s.Params {
		if len(p.Shape) > MaxDims {
			return fmt.Errorf("torch: tensor %s has %d dimensions, at most %d", p.Name, len(p.Shape), MaxDims)
		}
		if n := Numel(p.Shape); n < 0 || n != int64(len(p.Data)) {
			return fmt.Errorf("torch: tensor %s: shape %v holds %d values, %d given", p.Name, p.Shape, n, len(p.Data))
		}
	}
	return nil
}

// Optimizer kinds.
type OptimizerKind int

const (
	SGD  OptimizerKind = 0
	Adam OptimizerKind = 1
)

// Optimizer configures training: SGD with momentum and weight decay, or Adam (betas 0.9 and
// 0.999, eps 1e-8: PyTorch's defaults) with weight decay.
type Optimizer struct {
	Kind        OptimizerKind
	LR          float64
	Momentum    float64 // SGD only
	WeightDecay float64
}

// Input is one argument of forward: float32 or int64 values (exactly one set) of a shape whose
// elements they hold exactly. The slices must not be changed during the call.
type Input struct {
	F32   []float32
	I64   []int64
	Shape []int64
}

// Model is a TorchScript module with an optional optimizer. Its methods may be called from any
// goroutine; they run one at a time on the model's own OS thread.
type Model struct {
	mu      sync.Mutex
	h       *C.ppml_model
	t       *osthread.Thread
	cleanup runtime.Cleanup
}

type modelState struct {
	h *C.ppml_model
	t *osthread.Thread
}

func freeOnThread(h *C.ppml_model, t *osthread.Thread) {
	t.Do(func() { C.ppml_model_free(h) })
	t.Close()
}

// cstrings holds C copies of strings until free.
type cstrings []*C.char

func (cs *cstrings) add(s string) *C.char {
	c := C.CString(s)
	*cs = append(*cs, c)
	return c
}

func (cs cstrings) free() {
	for _, c := range cs {
		C.free(unsafe.Pointer(c))
	}
}

// NewModel compiles the spec into a module whose calls use threads intra-op threads.
func NewModel(s Spec, threads int) (*Model, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if threads < 1 {
		return nil, fmt.Errorf("torch: threads must be at least 1, got %d", threads)
	}
	if err := initTorch(); err != nil {
		return nil, err
	}
	var cs cstrings
	defer cs.free()
	// Arrays of pointers go to C memory: cgo forbids Go memory that holds Go pointers.
	nsub := len(s.Submodules)
	subNames := (**C.char)(C.calloc(C.size_t(max(nsub, 1)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	subClasses := (**C.char)(C.calloc(C.size_t(max(nsub, 1)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	defer C.free(unsafe.Pointer(subNames))
	defer C.free(unsafe.Pointer(subClasses))
	names, classes := unsafe.Slice(subNames, max(nsub, 1)), unsafe.Slice(subClasses, max(nsub, 1))
	for i, sub := range s.Submodules {
		names[i], classes[i] = cs.add(sub.Name), cs.add(sub.Class)
	}
	np := len(s.Params)
	params := (*C.ppml_param)(C.calloc(C.size_t(max(np, 1)), C.size_t(unsafe.Sizeof(C.ppml_param{}))))
	defer C.free(unsafe.Pointer(params))
	ps := unsafe.Slice(params, max(np, 1))
	var pin runtime.Pinner
	defer pin.Unpin()
	for i, p := range s.Params {
		ps[i].name = cs.add(p.Name)
		ps[i].ndim = C.int(len(p.Shape))
		for d, v := range p.Shape {
			ps[i].shape[d] = C.int64_t(v)
		}
		if len(p.Data) > 0 {
			pin.Pin(&p.Data[0])
			ps[i].data = (*C.float)(unsafe.Pointer(&p.Data[0]))
		}
		if p.Buffer {
			ps[i].is_buffer = 1
		}
	}
	cls, src := cs.add(s.Class), cs.add(s.Source)

	t := osthread.New()
	var h *C.ppml_model
	var err error
	t.Do(func() {
		if err = status("set threads", C.ppml_set_threads(C.int(threads))); err != nil {
			return
		}
		err = status("build model", C.ppml_model_new(cls, C.int(nsub), subNames, subClasses, C.int(np), params, src, &h))
	})
	if err != nil {
		t.Close()
		return nil, err
	}
	m := &Model{h: h, t: t}
	m.cleanup = runtime.AddCleanup(m, func(s modelState) { freeOnThread(s.h, s.t) }, modelState{h, t})
	return m, nil
}

// run executes fn on the model's thread with the model locked.
func (m *Model) run(fn func(h *C.ppml_model) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return ErrClosed
	}
	var err error
	m.t.Do(func() { err = fn(m.h) })
	return err
}

// SetOptimizer attaches the optimizer TrainStep uses (replacing any earlier one and its state).
func (m *Model) SetOptimizer(o Optimizer) error {
	if !(o.LR > 0) || math.IsInf(o.LR, 0) || o.Momentum < 0 || o.WeightDecay < 0 {
		return fmt.Errorf("torch: optimizer: learning rate %v, momentum %v, weight decay %v", o.LR, o.Momentum, o.WeightDecay)
	}
	return m.run(func(h *C.ppml_model) error {
		return status("optimizer", C.ppml_model_optimizer(h, C.int(o.Kind), C.double(o.LR), C.double(o.Momentum), C.double(o.WeightDecay)))
	})
}

// SetLearningRate changes the learning rate of the optimizer SetOptimizer attached, keeping its
// state: a schedule changes the rate between epochs without restarting Adam's moments.
func (m *Model) SetLearningRate(lr float64) error {
	if !(lr > 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("torch: learning rate %v", lr)
	}
	return m.run(func(h *C.ppml_model) error {
		return status("learning rate", C.ppml_model_set_lr(h, C.double(lr)))
	})
}

// LearningRate is the optimizer's current learning rate.
func (m *Model) LearningRate() (float64, error) {
	var lr C.double
	err := m.run(func(h *C.ppml_model) error {
		return status("learning rate", C.ppml_model_lr(h, &lr))
	})
	return float64(lr), err
}

// inputs lays out the forward arguments for the shim, pinning their data.
func inputs(in []Input, pin *runtime.Pinner) ([]C.ppml_tensor, error) {
	if len(in) == 0 {
		return nil, errors.New("torch: forward needs at least one input")
	}
	ts := make([]C.ppml_tensor, len(in))
	for i, x := range in {
		if len(x.Shape) > MaxDims {
			return nil, fmt.Errorf("torch: input %d has %d dimensions, at most %d", i, len(x.Shape), MaxDims)
		}
		n := Numel(x.Shape)
		var p unsafe.Pointer
		switch {
		case x.F32 != nil && x.I64 == nil && int64(len(x.F32)) == n:
			ts[i].dtype = C.PPML_F32
			if n > 0 {
				pin.Pin(&x.F32[0])
				p = unsafe.Pointer(&x.F32[0])
			}
		case x.I64 != nil && x.F32 == nil && int64(len(x.I64)) == n:
			ts[i].dtype = C.PPML_I64
			if n > 0 {
				pin.Pin(&x.I64[0])
				p = unsafe.Pointer(&x.I64[0])
			}
		default:
			return nil, fmt.Errorf("torch: input %d: shape %v does not match its %d float32 / %d int64 values", i, x.Shape, len(x.F32), len(x.I64))
		}
		ts[i].ndim = C.int(len(x.Shape))
		for d, v := range x.Shape {
			ts[i].shape[d] = C.int64_t(v)
		}
		ts[i].data = p
	}
	return ts, nil
}

// TrainStep runs one optimization step on a batch: forward in training mode, the negative
// log-likelihood of the log-probabilities forward returns against labels, backward, and an
// optimizer step. It returns the loss; when the loss is not finite it takes no step (the
// caller decides what a NaN means).
func (m *Model) TrainStep(labels []int64, in ...Input) (float64, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	ts, err := inputs(in, &pin)
	if err != nil {
		return 0, err
	}
	if len(labels) == 0 {
		return 0, errors.New("torch: empty batch")
	}
	var loss C.double
	err = m.run(func(h *C.ppml_model) error {
		return status("train step", C.ppml_model_train_step(h, &ts[0], C.int(len(ts)),
			(*C.int64_t)(unsafe.Pointer(&labels[0])), C.int64_t(len(labels)), &loss))
	})
	return float64(loss), err
}

// Forward runs forward without gradients into out, which must hold rows × cols values: the
// shape forward must return.
func (m *Model) Forward(out []float32, rows, cols int, in ...Input) error {
	if rows < 1 || cols < 1 || len(out) != rows*cols {
		return fmt.Errorf("torch: forward output of %d values for %d × %d", len(out), rows, cols)
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	ts, err := inputs(in, &pin)
	if err != nil {
		return err
	}
	return m.run(func(h *C.ppml_model) error {
		return status("forward", C.ppml_model_forward(h, &ts[0], C.int(len(ts)),
			(*C.float)(unsafe.Pointer(&out[0])), C.int64_t(rows), C.int64_t(cols)))
	})
}

// Get copies the tensor name (a parameter or buffer, dotted as in Param) into dst, which must
// hold exactly its elements.
func (m *Model) Get(name string, dst []float32) error {
	if len(dst) == 0 {
		return fmt.Errorf("torch: get %s: empty destination", name)
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	return m.run(func(h *C.ppml_model) error {
		return status("get "+name, C.ppml_model_get(h, cn, (*C.float)(unsafe.Pointer(&dst[0])), C.int64_t(len(dst))))
	})
}

// Save returns the module as a TorchScript archive (torch.jit.save's format) holding the extra
// files under extra/ (torch.jit.load(f, _extra_files={name: ""}) reads them back). Files are
// written in name order; the training flag is false in the saved module.
func (m *Model) Save(extra map[string][]byte) ([]byte, error) {
	names := make([]string, 0, len(extra))
	for n := range extra {
		if n == "" || strings.ContainsAny(n, "/\x00") {
			return nil, fmt.Errorf("torch: extra file name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	k := max(len(names), 1)
	cNames := (**C.char)(C.calloc(C.size_t(k), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	cData := (**C.char)(C.calloc(C.size_t(k), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	cLens := (*C.size_t)(C.calloc(C.size_t(k), C.size_t(unsafe.Sizeof(C.size_t(0)))))
	defer C.free(unsafe.Pointer(cNames))
	defer C.free(unsafe.Pointer(cData))
	defer C.free(unsafe.Pointer(cLens))
	ns, ds, ls := unsafe.Slice(cNames, k), unsafe.Slice(cData, k), unsafe.Slice(cLens, k)
	var cs cstrings
	defer cs.free()
	for i, n := range names {
		ns[i] = cs.add(n)
		ds[i] = (*C.char)(C.CBytes(extra[n]))
		cs = append(cs, ds[i])
		ls[i] = C.size_t(len(extra[n]))
	}
	var out []byte
	err := m.run(func(h *C.ppml_model) error {
		var p unsafe.Pointer
		var n C.size_t
		if err := status("save", C.ppml_model_save(h, C.int(len(names)), cNames, cData, cLens, &p, &n)); err != nil {
			return err
		}
		defer C.free(p)
		out = bytes.Clone(unsafe.Slice((*byte)(p), int(n)))
		return nil
	})
	return out, err
}

// Close frees the module and ends its thread. It is safe to call more than once.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return
	}
	m.cleanup.Stop()
	h := m.h
	m.h = nil
	freeOnThread(h, m.t)
}
