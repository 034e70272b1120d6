// Package torch binds the part of libtorch 1.13 (Debian's libtorch-dev) that ppml's deep
// learning needs, through a small C++ shim (shim.h, shim.cc) compiled by cgo.
//
// A Model is a TorchScript module built from ppml's own TorchScript source and tensors the
// caller supplies: it trains (forward, negative log-likelihood, backward, an SGD or Adam step),
// predicts, hands its tensors back, and saves itself as a TorchScript archive that Python's
// torch.jit.load reads. The shim never parses a model file; untrusted files are read in Go
// (package dl/ptfile) and only their tensors reach libtorch.
//
// Every shim call is checked: C++ exceptions stop at the shim boundary and come back as *Error
// with libtorch's message, or *MemoryLimitError when the process's memory limit refused an
// allocation. libtorch keeps the thread count and the grad mode per OS thread, so each Model
// runs all its calls on a dedicated locked thread (package internal/osthread).
//
// Memory: a counting allocator replaces libtorch's CPU allocator at the first NewModel, so
// that every tensor (weights, activations, gradients, optimizer state) counts against
// SetMemoryLimit, together with what callers Reserve for their own buffers. Scratch space that
// oneDNN and OpenBLAS allocate themselves is not counted; it is small next to the tensors.
package torch

/*
#cgo CXXFLAGS: -std=c++17 -O2 -D_GLIBCXX_USE_CXX11_ABI=1 -I/usr/include/torch/csrc/api/include -Wno-deprecated-declarations
#cgo LDFLAGS: -ltorch -ltorch_cpu -lc10 -lstdc++ -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// Error is a failure reported by libtorch; Message is its text (without C++ backtrace).
type Error struct {
	Op      string
	Message string
}

func (e *Error) Error() string { return "libtorch " + e.Op + ": " + e.Message }

// MemoryLimitError is an allocation refused by the memory limit (SetMemoryLimit).
type MemoryLimitError struct {
	Op      string
	Limit   int64
	Message string
}

func (e *MemoryLimitError) Error() string {
	return fmt.Sprintf("memory limit of %d bytes exceeded (%s): %s", e.Limit, e.Op, e.Message)
}

// status turns a shim status into an error and frees its message.
func status(op string, s C.ppml_status) error {
	if s.code == C.PPML_OK {
		return nil
	}
	msg := "unknown error"
	if s.msg != nil {
		msg = C.GoString(s.msg)
		C.free(unsafe.Pointer(s.msg))
	}
	if s.code == C.PPML_ERR_MEMORY {
		return &MemoryLimitError{Op: op, Limit: int64(C.ppml_mem_limit_get()), Message: msg}
	}
	return &Error{Op: op, Message: msg}
}

var (
	initOnce sync.Once
	initErr  error
)

func initTorch() error {
	initOnce.Do(func() { initErr = status("init", C.ppml_init()) })
	return initErr
}

// Version is the linked libtorch's version, e.g. "1.13.1" (from the headers it was built
// against, which Debian ships with the library).
func Version() string { return C.GoString(C.ppml_torch_version()) }

// SetMemoryLimit bounds the bytes of all tensors of the process plus what is reserved (0: no
// limit). It applies to allocations made after the call.
func SetMemoryLimit(bytes int64) { C.ppml_mem_set_limit(C.int64_t(bytes)) }

// MemoryLimit is the limit in force (0: none).
func MemoryLimit() int64 { return int64(C.ppml_mem_limit_get()) }

// MemoryInUse is the bytes counted now; MemoryPeak the most since ResetMemoryPeak.
func MemoryInUse() int64 { return int64(C.ppml_mem_used()) }
func MemoryPeak() int64  { return int64(C.ppml_mem_peak()) }
func ResetMemoryPeak()   { C.ppml_mem_reset_peak() }

// Reserve counts n bytes the caller holds (decoded datasets, token arrays) against the limit.
// Give them back with Release.
func Reserve(what string, n int64) error {
	if n <= 0 {
		return nil
	}
	if C.ppml_mem_reserve(C.int64_t(n)) != 0 {
		return &MemoryLimitError{Op: what, Limit: MemoryLimit(),
			Message: fmt.Sprintf("%d bytes requested, %d in use", n, MemoryInUse())}
	}
	return nil
}

// Release gives back bytes counted by Reserve.
func Release(n int64) {
	if n > 0 {
		C.ppml_mem_release(C.int64_t(n))
	}
}
