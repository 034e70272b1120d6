// Package xgboost binds the XGBoost 1.7 C API (Debian's libxgboost-dev) through cgo.
//
// The binding is deliberately thin: DMatrix and Booster wrap XGBoost's handles, every C call is
// checked and its failure carries XGBGetLastError's message, and both types free their handle on
// Close (with a cleanup as a safety net for handles a caller forgets). Train, the parameter
// validation and the model JSON checks sit on top.
//
// XGBoost keeps its last error, its prediction buffers and our captured log lines in
// thread-local storage, so every call and the reads that follow it run with the goroutine locked
// to its OS thread.
package xgboost

/*
#cgo LDFLAGS: -lxgboost
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

// XGBoost reports unused parameters only as a log warning. The callback keeps the log lines of
// the current thread so that the Go side can turn that warning into an error; every line is
// still written to stderr, as XGBoost's default logger would.
static __thread char ppml_log_buf[8192];
static __thread size_t ppml_log_len;

static void ppml_log(const char *msg) {
	size_t n = strlen(msg);
	size_t room = sizeof(ppml_log_buf) - 1 - ppml_log_len;
	if (n > room) n = room;
	memcpy(ppml_log_buf + ppml_log_len, msg, n);
	ppml_log_len += n;
	ppml_log_buf[ppml_log_len] = 0;
	fprintf(stderr, "xgboost: %s\n", msg);
}

static int ppml_register_log(void) { return XGBRegisterLogCallback(ppml_log); }
static void ppml_log_reset(void) { ppml_log_len = 0; ppml_log_buf[0] = 0; }
static const char *ppml_log_text(void) { return ppml_log_buf; }
*/
import "C"

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"unsafe"
)

// Error is a failure reported by XGBoost itself; Message is XGBGetLastError's text.
type Error struct {
	Op      string
	Message string
}

func (e *Error) Error() string { return "xgboost " + e.Op + ": " + e.Message }

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("xgboost: handle already closed")

// call runs fn on a locked OS thread, with our log capture cleared, and turns a non-zero return
// into an *Error carrying XGBoost's message. fn must only do C calls and copy results out.
func call(op string, fn func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// XGBoost keeps the log callback per thread, so it is set on whichever thread runs the call.
	if C.ppml_register_log() != 0 {
		return lastError("XGBRegisterLogCallback")
	}
	C.ppml_log_reset()
	if fn() != 0 {
		return lastError(op)
	}
	return unusedParamError(op, C.GoString(C.ppml_log_text()))
}

func lastError(op string) error {
	msg := strings.TrimSpace(C.GoString(C.XGBGetLastError()))
	if msg == "" {
		msg = "unknown error"
	}
	return &Error{Op: op, Message: msg}
}

// XGBoost 1.7 words the warning as `Parameters: { "foo", "bar" } are not used.` (and as
// "might not be used" in some paths); both become an error that quotes it.
var unusedParamRE = regexp.MustCompile(`Parameters: \{[^}]*\} (are not used|might not be used)\.`)

func unusedParamError(op, logText string) error {
	m := unusedParamRE.FindString(logText)
	if m == "" {
		return nil
	}
	return &Error{Op: op, Message: "unknown parameter: " + m}
}

// Version reports the linked libxgboost's version.
func Version() (major, minor, patch int) {
	var a, b, c C.int
	C.XGBoostVersion(&a, &b, &c)
	return int(a), int(b), int(c)
}

func checkVersion() error {
	major, minor, _ := Version()
	if major != 1 || minor != 7 {
		return fmt.Errorf("xgboost: linked libxgboost is %d.%d, this binding needs 1.7", major, minor)
	}
	return nil
}

// cStrings copies strs into C memory as a char*[] (cgo forbids passing Go memory holding
// pointers); free releases it.
func cStrings(strs []string) (arr **C.char, free func()) {
	n := max(len(strs), 1)
	arr = (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	s := unsafe.Slice(arr, n)
	for i, v := range strs {
		s[i] = C.CString(v)
	}
	return arr, func() {
		for i := range strs {
			C.free(unsafe.Pointer(s[i]))
		}
		C.free(unsafe.Pointer(arr))
	}
}

func setGlobalConfig(cfg string) error {
	c := C.CString(cfg)
	defer C.free(unsafe.Pointer(c))
	return call("XGBSetGlobalConfig", func() C.int { return C.XGBSetGlobalConfig(c) })
}
