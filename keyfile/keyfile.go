// Package keyfile stores keys in files: local key-encryption keys and
// recipient private keys (one secret per file, mode 0600, identified by the
// key id that envelope headers record), and recipient public keys (a text
// line safe to paste or email). The formats are in docs/formats/envelope.md
// section 5.
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

// Prefix starts the key line of a local key file.
const Prefix = "ppml-local-key-v1:"

// RecipientPrefix starts the key line of a recipient private key file:
// RecipientPrefix KEM ":" 64 lowercase hex digits.
const RecipientPrefix = "ppml-recipient-key-v1:"

const maxFileSize = 64 << 10

// Key is a loaded local key.
type Key struct {
	*envelope.LocalKey
	Path string
	// Warning is non-empty when the file is readable or writable by group
	// or others; the key is still usable.
	Warning string
}

// Any is a loaded key file of either kind: exactly one of Local and
// Identity is set.
type Any struct {
	Local    *envelope.LocalKey
	Identity *envelope.Identity
	Path     string
	Warning  string // as Key.Warning
}

// KeyWrapper encrypts new files: under the local key, or to the identity's
// public half.
func (a *Any) KeyWrapper() envelope.KeyWrapper {
	if a.Identity != nil {
		return a.Identity
	}
	return a.Local
}

// KeyResolver decrypts files under the local key or to the identity.
func (a *Any) KeyResolver() envelope.KeyResolver {
	if a.Identity != nil {
		return a.Identity
	}
	return a.Local
}

// Ref is the key reference of files this key decrypts.
func (a *Any) Ref() envelope.KeyRef {
	if a.Identity != nil {
		return a.Identity.Ref()
	}
	return a.Local.Ref()
}

// Generate creates a new local key file at path with mode 0600. It refuses
// to replace an existing file unless overwrite.
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
	data := Marshal(secret, lk.ID(), time.Now())
	defer clear(data)
	if err := writeSecret(path, data, overwrite); err != nil {
		return nil, err
	}
	return &Key{LocalKey: lk, Path: path}, nil
}

// GenerateIdentity creates a new recipient key pair of the given KEM
// (envelope.KEMMLKEM768X25519 or envelope.KEMX25519) and writes its private
// key file at path with mode 0600, refusing to replace an existing file
// unless overwrite. The public half is id.Recipient(), for WriteRecipient.
func GenerateIdentity(path, kem string, overwrite bool) (*envelope.Identity, error) {
	id, err := envelope.GenerateIdentity(kem)
	if err != nil {
		return nil, err
	}
	data, err := MarshalIdentity(id, time.Now())
	if err != nil {
		return nil, err
	}
	defer clear(data)
	if err := writeSecret(path, data, overwrite); err != nil {
		return nil, err
	}
	return id, nil
}

func writeSecret(path string, data []byte, overwrite bool) error {
	af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: overwrite})
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := af.Write(data); err != nil {
		return err
	}
	return af.Commit()
}

// Marshal renders a local key file.
func Marshal(secret []byte, id string, created time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("# ppml local key-encryption key. Keep it secret: it decrypts every file encrypted under it.\n")
	fmt.Fprintf(&b, "# created: %s\n", created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# key id: %s\n", id)
	b.WriteString(Prefix + hex.EncodeToString(secret) + "\n")
	return b.Bytes()
}

// MarshalIdentity renders a recipient private key file. The public key
// comment is informational (and checked when read back).
func MarshalIdentity(id *envelope.Identity, created time.Time) ([]byte, error) {
	sk, err := id.Bytes()
	if err != nil {
		return nil, err
	}
	defer clear(sk)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# ppml recipient private key (%s). Keep it secret: it decrypts every file encrypted to its public key.\n", envelope.KEMDisplay(id.KEM()))
	fmt.Fprintf(&b, "# created: %s\n", created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# key id: %s\n", id.ID())
	fmt.Fprintf(&b, "# public key: %s\n", id.Recipient())
	b.WriteString(RecipientPrefix + id.KEM() + ":" + hex.EncodeToString(sk) + "\n")
	return b.Bytes(), nil
}

// Load reads a local key file. A file that group or others may access still
// loads, with Key.Warning set. A recipient private key file is an error
// that says so (use LoadAny).
func Load(path string) (*Key, error) {
	a, err := LoadAny(path)
	if err != nil {
		return nil, err
	}
	if a.Local == nil {
		return nil, fmt.Errorf("key file %s holds a recipient private key (%s), not a local key", path, a.Identity.Ref().Describe())
	}
	return &Key{LocalKey: a.Local, Path: path, Warning: a.Warning}, nil
}

// LoadAny reads a key file of either kind.
func LoadAny(path string) (*Any, error) {
	data, warning, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	p, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return &Any{Local: p.local, Identity: p.identity, Path: path, Warning: warning}, nil
}

func readSecret(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("key file %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("key file %s: %w", path, err)
	}
	warning := ""
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		warning = fmt.Sprintf("key file %s has mode %04o: group or others can access it; run chmod 600 %s", path, perm, path)
	}
	return data, warning, nil
}

// ErrNotKeyFile is returned by Parse for data that is not a key file.
var ErrNotKeyFile = errors.New("not a ppml key file")

// Parse reads the local key file format: comment lines starting with '#',
// blank lines, and exactly one key line. A "# key id:" comment, when
// present, must match the key, which catches hand-edited files.
func Parse(data []byte) (*envelope.LocalKey, error) {
	p, err := parse(data)
	if err != nil {
		return nil, err
	}
	if p.local == nil {
		return nil, fmt.Errorf("%w: it holds a recipient private key, not a local key", ErrNotKeyFile)
	}
	return p.local, nil
}

// ParseIdentity reads a recipient private key file: as Parse, with a
// ppml-recipient-key-v1 line; a "# public key:" comment, when present, must
// match the key too.
func ParseIdentity(data []byte) (*envelope.Identity, error) {
	p, err := parse(data)
	if err != nil {
		return nil, err
	}
	if p.identity == nil {
		return nil, fmt.Errorf("%w: it holds a local key, not a recipient private key", ErrNotKeyFile)
	}
	return p.identity, nil
}

type parsed struct {
	local    *envelope.LocalKey
	identity *envelope.Identity
}

func parse(data []byte) (*parsed, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotKeyFile, maxFileSize)
	}
	var (
		secret                []byte
		kem                   string
		statedID, statedPub   string
		haveID, havePub, have bool
	)
	defer func() { clear(secret) }()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxFileSize+1)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		keyLine := func(h string) error {
			if have {
				return fmt.Errorf("%w: more than one key line", ErrNotKeyFile)
			}
			s, err := hex.DecodeString(h)
			if err != nil || len(s) != 32 || strings.ToLower(h) != h {
				return fmt.Errorf("%w: line %d: the key must be 64 lowercase hex digits", ErrNotKeyFile, line)
			}
			secret, have = s, true
			return nil
		}
		switch {
		case t == "":
		case strings.HasPrefix(t, "#"):
			if id, ok := strings.CutPrefix(t, "# key id:"); ok {
				statedID, haveID = strings.TrimSpace(id), true
			} else if pub, ok := strings.CutPrefix(t, "# public key:"); ok {
				statedPub, havePub = strings.TrimSpace(pub), true
			}
		case strings.HasPrefix(t, Prefix):
			if err := keyLine(t[len(Prefix):]); err != nil {
				return nil, err
			}
		case strings.HasPrefix(t, RecipientPrefix):
			k, h, ok := strings.Cut(t[len(RecipientPrefix):], ":")
			if !ok {
				return nil, fmt.Errorf("%w: line %d: want %sKEM:KEY", ErrNotKeyFile, line, RecipientPrefix)
			}
			if k != envelope.KEMMLKEM768X25519 && k != envelope.KEMX25519 {
				return nil, fmt.Errorf("%w: line %d: unknown recipient key type %q (want %s or %s)", ErrNotKeyFile, line, k, envelope.KEMMLKEM768X25519, envelope.KEMX25519)
			}
			if err := keyLine(h); err != nil {
				return nil, err
			}
			kem = k
		case envelope.LooksLikeRecipient(t):
			return nil, fmt.Errorf("%w: it holds a public key, which encrypts (--recipient) but cannot decrypt: give the private key file", ErrNotKeyFile)
		default:
			return nil, fmt.Errorf("%w: line %d is neither a comment nor a %s or %s line", ErrNotKeyFile, line,
				strings.TrimSuffix(Prefix, ":"), strings.TrimSuffix(RecipientPrefix, ":"))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotKeyFile, err)
	}
	if !have {
		return nil, fmt.Errorf("%w: no %s or %s line", ErrNotKeyFile, strings.TrimSuffix(Prefix, ":"), strings.TrimSuffix(RecipientPrefix, ":"))
	}
	var (
		p   parsed
		id  string
		err error
	)
	if kem == "" {
		if havePub {
			return nil, fmt.Errorf("%w: a local key has no public key, but the file states one", ErrNotKeyFile)
		}
		if p.local, err = envelope.NewLocalKey(secret); err != nil {
			return nil, err
		}
		id = p.local.ID()
	} else {
		if p.identity, err = envelope.NewIdentity(kem, secret); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotKeyFile, err)
		}
		id = p.identity.ID()
		if havePub && statedPub != p.identity.Recipient().String() {
			return nil, fmt.Errorf("corrupt key file: the public key it states is not the private key's")
		}
	}
	if haveID && statedID != id {
		return nil, fmt.Errorf("corrupt key file: it says key id %s but the key has id %s", statedID, id)
	}
	return &p, nil
}

// MarshalRecipient renders a public key file: the text form on one line.
func MarshalRecipient(r *envelope.Recipient) []byte {
	return []byte(r.String() + "\n")
}

// WriteRecipient writes a public key file at path (mode 0644: it is not
// secret), atomically, refusing to replace an existing file unless
// overwrite.
func WriteRecipient(path string, r *envelope.Recipient, overwrite bool) error {
	af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o644, Overwrite: overwrite})
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := af.Write(MarshalRecipient(r)); err != nil {
		return err
	}
	return af.Commit()
}

// ParseRecipient reads a public key file: lines starting with '#' are
// comments; the others together hold one public key, in which spaces and
// line breaks are ignored (a mail client may have wrapped it). One
// recipient per file: an envelope names exactly one key.
func ParseRecipient(data []byte) (*envelope.Recipient, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("not a ppml public key file: larger than %d bytes", maxFileSize)
	}
	var text strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if text.Len() > 0 && envelope.LooksLikeRecipient(t) {
			return nil, errors.New("more than one public key: an envelope is encrypted to exactly one recipient (encrypt once per recipient, or use a key-service key)")
		}
		if strings.HasPrefix(t, Prefix) || strings.HasPrefix(t, RecipientPrefix) {
			return nil, errors.New("this is a private key file, not a public key: give the .pub file (ppml key public prints it from the private key)")
		}
		text.WriteString(t)
	}
	return envelope.ParseRecipient(text.String())
}

// LoadRecipient reads a public key file.
func LoadRecipient(path string) (*envelope.Recipient, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("public key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("public key file %s: %w", path, err)
	}
	r, err := ParseRecipient(data)
	if err != nil {
		return nil, fmt.Errorf("public key file %s: %w", path, err)
	}
	return r, nil
}
