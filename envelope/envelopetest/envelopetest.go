// Package envelopetest holds test helpers for code that reads and writes
// protected files: encrypt a plaintext into an envelope, decrypt one, and
// check that no plaintext marker reached the disk. Like net/http/httptest, it
// is imported only by tests.
package envelopetest

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/envelope"
)

// Encrypt writes plain to path as an envelope of content type ct under kw,
// replacing an existing file.
func Encrypt(t testing.TB, path string, kw envelope.KeyWrapper, plain []byte, ct envelope.ContentType) {
	t.Helper()
	w, err := envelope.CreateFile(path, kw, &envelope.Options{ContentType: ct, Size: int64(len(plain)), SizeKnown: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Decrypt returns the plaintext of the envelope at path.
func Decrypt(t testing.TB, path string, kr envelope.KeyResolver) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := envelope.NewReader(f, kr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CopyFile copies a (non-secret) fixture file.
func CopyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// AssertNoMarker scans every regular file below dir for a plaintext marker.
func AssertNoMarker(t testing.TB, dir string, marker []byte) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, marker) {
			t.Errorf("plaintext marker found on disk in %s", p)
		}
		return nil
	})
}
