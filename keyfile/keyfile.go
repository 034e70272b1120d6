// Package keyfile stores local key-encryption keys: one 32-byte secret per
// file, mode 0600, identified by the key id that envelope headers record.
package keyfile

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/envelope"
)

// Prefix starts the key line of a key file.
const Prefix = "ppml-local-key-v1:"

const maxFileSize = 64 << 10

// Key is a loaded local key.
type Key struct {
	*envelope.LocalKey
	Path string
	// Warning is non-empty when the file is readable or writable by group
	// or others; the key is still usable.
	Warning string
}

// Generate creates a new key file at path with mode 0600. It refuses to
// replace an existing file unless overwrite.
func Generate(path string, overwrite bool) (*Key, error) {
	secret := make([]byte, envelope.LocalKeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	defer clear(secret)
	lk, err := envelope.NewLocalKey(secret)
	if err != nil {
		return nil, err
	}
	af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: overwrite})
	if err != nil {
		return nil, err
	}
	defer af.Abort()
	if _, err := af.Write(Marshal(secret, lk.ID(), time.Now())); err != nil {
		return nil, err
	}
	if err := af.Commit(); err != nil {
		return nil, err
	}
	return &Key{LocalKey: lk, Path: path}, nil
}

// Marshal renders a key file.
func Marshal(secret []byte, id string, created time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("# ppml local key-encryption key. Keep it secret: it decrypts every file encrypted under it.\n")
	fmt.Fprintf(&b, "# created: %s\n", created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# key id: %s\n", id)
	b.WriteString(Prefix + hex.EncodeToString(secret) + "\n")
	return b.Bytes()
}

// Load reads a key file. A file that group or others may access still loads,
// with Key.Warning set.
func Load(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	defer clear(data)
	lk, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	k := &Key{LocalKey: lk, Path: path}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		k.Warning = fmt.Sprintf("key file %s has mode %04o: group or others can access it; run chmod 600 %s", path, perm, path)
	}
	return k, nil
}

// ErrNotKeyFile is returned by Parse for data that is not a key file.
var ErrNotKeyFile = errors.New("not a ppml key file")

// Parse reads the key file format: comment lines starting with '#', blank
// lines, and exactly one key line. A "# key id:" comment, when present, must
// match the key, which catches hand-edited files.
func Parse(data []byte) (*envelope.LocalKey, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotKeyFile, maxFileSize)
	}
	var secret []byte
	var statedID string
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		switch {
		case t == "":
		case strings.HasPrefix(t, "#"):
			if id, ok := strings.CutPrefix(t, "# key id:"); ok {
				statedID = strings.TrimSpace(id)
			}
		case strings.HasPrefix(t, Prefix):
			if secret != nil {
				return nil, fmt.Errorf("%w: more than one key line", ErrNotKeyFile)
			}
			h := t[len(Prefix):]
			s, err := hex.DecodeString(h)
			if err != nil || len(s) != envelope.LocalKeySize || strings.ToLower(h) != h {
				return nil, fmt.Errorf("%w: line %d: the key must be %d lowercase hex digits", ErrNotKeyFile, line, 2*envelope.LocalKeySize)
			}
			secret = s
			defer clear(s)
		default:
			return nil, fmt.Errorf("%w: line %d is neither a comment nor a %s line", ErrNotKeyFile, line, strings.TrimSuffix(Prefix, ":"))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotKeyFile, err)
	}
	if secret == nil {
		return nil, fmt.Errorf("%w: no %s line", ErrNotKeyFile, strings.TrimSuffix(Prefix, ":"))
	}
	lk, err := envelope.NewLocalKey(secret)
	if err != nil {
		return nil, err
	}
	if statedID != "" && statedID != lk.ID() {
		return nil, fmt.Errorf("corrupt key file: it says key id %s but the key has id %s", statedID, lk.ID())
	}
	return lk, nil
}
