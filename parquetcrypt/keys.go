package parquetcrypt

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
)

// ErrKeyNotFound is wrapped by errors for a key the retriever does not have.
var ErrKeyNotFound = errors.New("key not found")

// KeyRequest names the key a file asks for.
type KeyRequest struct {
	// Column is the dotted column path ("a.b.c"); empty for the footer key.
	Column string
	// KeyMetadata is what the writer stored next to the key: a key id
	// ("kf"), parquet-java key material, or nothing.
	KeyMetadata []byte
}

func (r KeyRequest) what() string {
	if r.Column == "" {
		return "footer"
	}
	return fmt.Sprintf("column %q", r.Column)
}

// KeyRetriever supplies decryption keys. In a trusted job the keys come from
// the key service after attestation; the retriever only maps a file's
// request to them. Implementations return an error wrapping ErrKeyNotFound
// for keys they do not hold.
type KeyRetriever interface {
	Key(ctx context.Context, req KeyRequest) ([]byte, error)
}

// StaticKeys is a KeyRetriever over keys already in memory. A request is
// answered by column path first, then by key id (the key metadata as a
// string), then, for the footer, by Footer.
type StaticKeys struct {
	Footer   []byte
	ByColumn map[string][]byte
	ByID     map[string][]byte
}

// Key implements KeyRetriever.
func (s *StaticKeys) Key(_ context.Context, req KeyRequest) ([]byte, error) {
	if req.Column != "" {
		if k, ok := s.ByColumn[req.Column]; ok {
			return k, nil
		}
	}
	if len(req.KeyMetadata) > 0 {
		if k, ok := s.ByID[string(req.KeyMetadata)]; ok {
			return k, nil
		}
	}
	if req.Column == "" && s.Footer != nil {
		return s.Footer, nil
	}
	return nil, fmt.Errorf("key metadata %q: %w", printable(req.KeyMetadata), ErrKeyNotFound)
}

// printable shortens key metadata for error messages; it is an identifier,
// never key bytes.
func printable(b []byte) string {
	const max = 64
	s := []rune(string(b))
	if len(s) > max {
		return string(s[:max]) + "…"
	}
	return string(s)
}

func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
