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
	return fill(t, m, data)
}

// SealedTmpfs is Sealed on the route Gramine takes, where memfd_create is
// missing: a read-only file in memfd.MemFS() (set $PPML_MEMFS to choose the
// directory).
func SealedTmpfs(t testing.TB, data []byte) *memfd.File {
	t.Helper()
	m, err := memfd.NewTmpfs()
	if err != nil {
		t.Fatal(err)
	}
	return fill(t, m, data)
}

func fill(t testing.TB, m *memfd.File, data []byte) *memfd.File {
	t.Helper()
	t.Cleanup(func() { m.Close() })
	if _, err := m.OSFile().Write(data); err != nil {
		t.Fatal(err)
	}
	if err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	return m
}
