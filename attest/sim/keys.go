package sim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ppml/ppml/atomicfile"
)

// File names inside the simulation directory.
const (
	PlatformKeyFile    = "platform.key" // PKCS#8 PEM, mode 0600
	PlatformPubKeyFile = "platform.pub" // PKIX PEM: give this to verifiers that should trust this machine
	SignerKeyFile      = "signer.key"   // default code-signing key, PKCS#8 PEM, mode 0600
)

// DefaultDir is $PPML_SIM_DIR, else $XDG_CONFIG_HOME/ppml/sim, else the
// user configuration directory's ppml/sim.
func DefaultDir() (string, error) {
	if d := os.Getenv("PPML_SIM_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "ppml", "sim"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("simulation directory: set PPML_SIM_DIR: %w", err)
	}
	return filepath.Join(d, "ppml", "sim"), nil
}

// loadOrCreateKey returns the Ed25519 private key in dir/name, creating it
// (mode 0600, directory 0700) on first use. Two processes racing to create
// it end up with the same key.
func loadOrCreateKey(dir, name string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, name)
	if k, err := readPrivateKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("simulation directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	// Without Overwrite the file appears atomically and never replaces one
	// another process created meanwhile; that one wins and is read below.
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	err = atomicfile.WriteFile(path, pemKey, atomicfile.Options{Perm: 0o600})
	clear(pemKey)
	clear(der)
	if err != nil && !errors.Is(err, atomicfile.ErrExists) {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return readPrivateKey(path)
}

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is accessible to other users (mode %o): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T key, want Ed25519", path, k)
	}
	return ek, nil
}

// PlatformKey returns this machine's simulation platform key from dir
// (created on first use) and writes its public half to dir/platform.pub.
func PlatformKey(dir string) (ed25519.PrivateKey, error) {
	k, err := loadOrCreateKey(dir, PlatformKeyFile)
	if err != nil {
		return nil, fmt.Errorf("simulation platform key: %w", err)
	}
	pubPath := filepath.Join(dir, PlatformPubKeyFile)
	if _, err := os.Stat(pubPath); errors.Is(err, fs.ErrNotExist) {
		if err := writePublicKey(pubPath, k.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := atomicfile.WriteFile(path, b, atomicfile.Options{Perm: 0o644, Overwrite: true}); err != nil {
		return fmt.Errorf("simulation platform public key: %w", err)
	}
	return nil
}

// LoadPublicKey reads an Ed25519 public key (PEM "PUBLIC KEY") such as a
// platform.pub file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := parsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T key, want an Ed25519 simulation platform key", path, pub)
	}
	return k, nil
}

// parsePublicKey reads a PEM public key, or the public half of a PEM
// PKCS#8 private key.
func parsePublicKey(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T is not a signing key", k)
		}
		return s.Public(), nil
	}
	return nil, fmt.Errorf("PEM block %q, want PUBLIC KEY or PRIVATE KEY", blk.Type)
}

// KeyID is the SHA-256 of a raw Ed25519 platform public key.
func KeyID(pub ed25519.PublicKey) [32]byte { return sha256.Sum256(pub) }

// SignerDigest is the SHA-256 of a public key's PKIX DER encoding: the
// simulated equivalent of MRSIGNER.
func SignerDigest(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, fmt.Errorf("signing key: %w", err)
	}
	return sha256.Sum256(der), nil
}
