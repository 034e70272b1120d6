package seal

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultTEEKeyDir is where Gramine exposes its SGX sealing keys.
const DefaultTEEKeyDir = "/dev/attestation/keys"

// TEE derives the root key from the TEE's sealing key with HKDF-SHA256 and
// a random salt kept in the sealed state. With Gramine's _sgx_mrenclave key
// only the same enclave build on the same CPU recovers it; _sgx_mrsigner
// lets later enclave versions of the same signer recover it too.
type TEE struct {
	// KeyDir is the directory holding the sealing key files
	// (DefaultTEEKeyDir when empty; tests point it elsewhere).
	KeyDir string
	// KeyName is the sealing key file name: "_sgx_mrenclave" (default) or "_sgx_mrsigner".
	KeyName string
}

func (t *TEE) Type() Type { return TypeTEE }

func (t *TEE) keyName(st *State) (string, error) {
	name := t.KeyName
	if st != nil && st.SealingKey != "" {
		if name != "" && name != st.SealingKey {
			return "", fmt.Errorf("seal tee: data was sealed with %s, not %s", st.SealingKey, name)
		}
		name = st.SealingKey
	}
	if name == "" {
		name = "_sgx_mrenclave"
	}
	if name != "_sgx_mrenclave" && name != "_sgx_mrsigner" {
		return "", fmt.Errorf("seal tee: sealing key %q: want _sgx_mrenclave or _sgx_mrsigner", name)
	}
	return name, nil
}

func (t *TEE) derive(name string, salt []byte) ([]byte, error) {
	dir := t.KeyDir
	if dir == "" {
		dir = DefaultTEEKeyDir
	}
	p := filepath.Join(dir, name)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("seal tee: sealing key %s does not exist: not running inside a Gramine SGX enclave?", p)
	}
	if err != nil {
		return nil, fmt.Errorf("seal tee: open sealing key: %w", err)
	}
	defer f.Close()
	ikm, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("seal tee: read sealing key %s: %w", p, err)
	}
	defer clear(ikm)
	if len(ikm) < 16 {
		return nil, fmt.Errorf("seal tee: sealing key %s holds %d bytes, want at least 16", p, len(ikm))
	}
	root, err := hkdf.Key(sha256.New, ikm, salt, "ppml root key v1 "+strings.TrimPrefix(name, "_"), KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal tee: derive root key: %w", err)
	}
	return root, nil
}

// Init picks a random salt and derives the root key.
func (t *TEE) Init() (*InitResult, error) {
	name, err := t.keyName(nil)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("seal tee: random salt: %w", err)
	}
	root, err := t.derive(name, salt)
	if err != nil {
		return nil, err
	}
	st, err := newState(TypeTEE, root)
	if err != nil {
		return nil, err
	}
	st.SealingKey, st.Salt = name, salt
	return &InitResult{RootKey: root, State: st}, nil
}

// Unseal derives the root key again and checks it.
func (t *TEE) Unseal(st *State) ([]byte, error) {
	name, err := t.keyName(st)
	if err != nil {
		return nil, err
	}
	if len(st.Salt) == 0 {
		return nil, errors.New("seal tee: sealed state has no salt")
	}
	root, err := t.derive(name, st.Salt)
	if err != nil {
		return nil, err
	}
	if err := st.Check(root); err != nil {
		clear(root)
		return nil, fmt.Errorf("seal tee: the sealing key %s gives another root key: this is a different enclave (MRENCLAVE/MRSIGNER) or CPU than the one that sealed the data: %w", name, err)
	}
	return root, nil
}
