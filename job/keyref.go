package job

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/envelope"
)

// KeyScheme says where a key lives.
type KeyScheme string

const (
	// KeyKMS is a key held by a ppml key service: kms://HOST[:PORT]/NAME[@VERSION].
	KeyKMS KeyScheme = envelope.SchemeKMS
	// KeyLocal is a local key named by its key id: local:ID (32 hex digits).
	KeyLocal KeyScheme = envelope.SchemeLocal
	// KeyFile is a local key file by path (development and the simulated
	// TEE only): file:PATH.
	KeyFile KeyScheme = "file"
)

// KeyRef names the key a file is (or will be) encrypted under. kms: and
// local: references have exactly the grammar and canonical spelling of the
// key reference in an envelope header (docs/formats), so a job's key
// references compare byte for byte with the headers of its files.
type KeyRef struct {
	Scheme KeyScheme
	// Envelope is the parsed reference for KeyKMS and KeyLocal.
	Envelope envelope.KeyRef
	// Path is a KeyFile path as written, cleaned; part of the identity.
	Path string
	// AbsPath is Path resolved against the manifest's directory; not part
	// of the identity.
	AbsPath string
}

// String returns the canonical form, which is what the job identity contains.
func (k KeyRef) String() string {
	if k.Scheme == KeyFile {
		return "file:" + k.Path
	}
	return k.Envelope.String()
}

// ParseKeyRef reads a key reference. kms: and local: references must be in
// canonical form (lower-case host, no leading zeros), so that each key has
// one spelling. baseDir (absolute) resolves relative file: paths.
func ParseKeyRef(s, baseDir string) (KeyRef, error) {
	if p, ok := strings.CutPrefix(s, "file:"); ok {
		if p == "" {
			return KeyRef{}, fmt.Errorf("key reference %q has an empty path", truncate(s))
		}
		clean := filepath.Clean(p)
		abs := clean
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(baseDir, clean)
		}
		return KeyRef{Scheme: KeyFile, Path: clean, AbsPath: abs}, nil
	}
	if !strings.HasPrefix(s, "kms://") && !strings.HasPrefix(s, "local:") {
		return KeyRef{}, fmt.Errorf("key reference %q: want kms://HOST[:PORT]/NAME[@VERSION], local:KEYID or file:PATH", truncate(s))
	}
	r, err := envelope.ParseKeyRef(s)
	if err != nil {
		return KeyRef{}, err
	}
	return KeyRef{Scheme: KeyScheme(r.Scheme), Envelope: r}, nil
}
