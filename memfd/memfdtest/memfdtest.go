// Package memfdtest holds the test helper for code that reads decrypted
// inputs: plaintext in a sealed in-memory file, as the launcher hands it to
// an engine after decryption. Like net/http/httptest it is imported only by
// tests.
package memfdtest

import (
	"testing"

	"github.com/ppml/ppml/memfd"
)

// Sealed puts data into a new memfd named name, seals it, and closes it
// when the test ends. Engines read it by Path (/proc/self/fd/N) or through
// OSFile.
func Sealed(t testing.TB, name string, data []byte) *memfd.File {
	t.Helper()
	m, err := memfd.New(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if _, err := m.OSFile().Write(data); err != nil {
		t.Fatal(err)
	}
	if err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	return m
}
