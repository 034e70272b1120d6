// Package shareddata locates the shared test data (real attestation evidence,
// encrypted Parquet written by other implementations, TPC-H answers) that lives
// outside the repository, in PPML_SHARED or <repo>/../shared.
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
	_, file, _, _ := runtime.Caller(0)
	// file is <repo>/internal/shareddata/shareddata.go
	repo := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	return filepath.Join(filepath.Dir(repo), "shared")
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
