package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ppml/ppml/atomicfile"
)

// File keeps the root key in a file readable by its owner only. It is for
// development: anyone who can read the file has every key.
type File struct {
	// Path of the key file. Init creates it; it must not exist yet.
	Path string
}

func (f *File) Type() Type { return TypeFile }

// Init writes a new root key, hex-encoded, to f.Path with mode 0600.
func (f *File) Init() (*InitResult, error) {
	if f.Path == "" {
		return nil, errors.New("seal file: no key file path")
	}
	root, err := newRootKey()
	if err != nil {
		return nil, err
	}
	st, err := newState(TypeFile, root)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(f.Path)
	if err != nil {
		return nil, err
	}
	st.KeyFile = abs
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("seal file: %w", err)
	}
	enc := []byte(hex.EncodeToString(root) + "\n")
	err = atomicfile.WriteFile(abs, enc, atomicfile.Options{Perm: 0o600})
	clear(enc)
	switch {
	case errors.Is(err, atomicfile.ErrExists):
		return nil, fmt.Errorf("seal file: key file %s already exists: refusing to overwrite a root key", abs)
	case err != nil:
		return nil, fmt.Errorf("seal file: write key file: %w", err)
	}
	return &InitResult{RootKey: root, State: st}, nil
}

// Unseal reads the key file (f.Path, or the path recorded in st when f.Path
// is empty) and checks it against st.
func (f *File) Unseal(st *State) ([]byte, error) {
	p := f.Path
	if p == "" {
		p = st.KeyFile
	}
	if p == "" {
		return nil, errors.New("seal file: the sealed state names no key file and none was given")
	}
	fh, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("seal file: key file %s is missing: the data in this directory was encrypted under it; restore it from your backup (a new root key would not open the existing data)", p)
	}
	if err != nil {
		return nil, fmt.Errorf("seal file: open key file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal file: key file %s is not a regular file", p)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal file: key file %s has mode %04o: others can read it; chmod 600 %s", p, fi.Mode().Perm(), p)
	}
	raw, err := io.ReadAll(io.LimitReader(fh, 1024))
	if err != nil {
		return nil, fmt.Errorf("seal file: read key file: %w", err)
	}
	defer clear(raw)
	raw = bytes.TrimSpace(raw)
	root := make([]byte, KeySize)
	if len(raw) != 2*KeySize {
		return nil, fmt.Errorf("seal file: key file %s holds %d characters, want %d hex digits", p, len(raw), 2*KeySize)
	}
	if _, err := hex.Decode(root, raw); err != nil {
		return nil, fmt.Errorf("seal file: key file %s is not hex", p)
	}
	if err := st.Check(root); err != nil {
		clear(root)
		return nil, fmt.Errorf("seal file: key file %s is not the root key of this data: %w", p, err)
	}
	return root, nil
}
