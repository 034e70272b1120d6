// Package buildinfo says which build of ppml is running. Version and Commit
// are stamped by the Makefile with -ldflags -X (deterministically: the same
// commit gives the same bytes, see docs/reproducible-builds.md); a plain
// `go build` leaves them "devel" and "unknown".
package buildinfo

import "runtime"

// Stamped at link time:
//
//	-X github.com/ppml/ppml/internal/buildinfo.Version=v0.3.0-12-gabcdef
//	-X github.com/ppml/ppml/internal/buildinfo.Commit=<40 hex digits>
var (
	Version = "devel"
	Commit  = "unknown"
)

// GoVersion is the Go toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
