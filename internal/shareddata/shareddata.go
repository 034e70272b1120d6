// Package shareddata locates the shared test data (real attestation evidence,
// encrypted Parquet written by other implementations, TPC-H answers) that lives
// outside the repository, in PPML_SHARED or <repo>/../shared.
//
// It is for tests only: it finds the repository from the test's source or
// working directory, which means nothing on the machine a binary runs on.
// Commands take such paths as flags; a test fails if a non-test file imports
// this package.
package shareddata

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the shared data directory: $PPML_SHARED if set, otherwise
// <repo>/../shared.
func Dir() string {
	if d := os.Getenv("PPML_SHARED"); d != "" {
		return d
	}
	return filepath.Join(filepath.Dir(repoRoot()), "shared")
}

// repoRoot is the module root: found from this file's path, or, when the
// test binary was built with -trimpath (no absolute source paths), from the
// working directory, which go test sets to the package being tested.
func repoRoot() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		// file is <repo>/internal/shareddata/shareddata.go
		return filepath.Dir(filepath.Dir(filepath.Dir(file)))
	}
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

// Path joins elems under the shared testdata directory.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir(), "testdata"}, elem...)...)
}

// Require returns Path(elem...) and fails the test when it does not exist:
// missing shared data is a broken checkout, never a reason to skip.
func Require(t testing.TB, elem ...string) string {
	t.Helper()
	p := Path(elem...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared test data missing (set PPML_SHARED?): %v", err)
	}
	return p
}
