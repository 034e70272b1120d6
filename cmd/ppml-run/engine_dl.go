//go:build !ppml_no_dl

package main

// The dl engine: libtorch through a C++ shim (cgo). Debian's libtorch links
// about 280 shared libraries; RUNTIME_TAGS=ppml_no_dl builds a runtime
// without it (docs/engines.md).
import _ "github.com/ppml/ppml/engine/dl"
