package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ppml/ppml/attest"
)

// TEEType is the claims' TEE type for simulated evidence.
const TEEType = "simulated"

// Attester produces simulated evidence.
type Attester struct {
	// Dir holds the platform key; empty means DefaultDir().
	Dir string
	// SignerKey is a PEM file with the code-signing key (public, or private
	// whose public half is used); its digest becomes the signer claim.
	// Empty means Dir/signer.key, created on first use.
	SignerKey string
	// Executable is the file whose SHA-384 is the measurement; empty means
	// /proc/self/exe, the running program.
	Executable string
	// Now is the clock for the informational timestamp; nil means time.Now.
	Now func() time.Time
}

// Name implements attest.Attester.
func (a *Attester) Name() string { return "sim" }

// Evidence implements attest.Attester.
func (a *Attester) Evidence(_ context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	dir := a.Dir
	if dir == "" {
		var err error
		if dir, err = DefaultDir(); err != nil {
			return nil, err
		}
	}
	key, err := PlatformKey(dir)
	if err != nil {
		return nil, err
	}
	signer, err := a.signer(dir)
	if err != nil {
		return nil, err
	}
	exe := a.Executable
	if exe == "" {
		exe = "/proc/self/exe"
	}
	meas, err := Measure(exe)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	b := body(now(), reportData, meas, signer, KeyID(key.Public().(ed25519.PublicKey)))
	b = append(b, ed25519.Sign(key, b)...)
	return &attest.Evidence{Platform: attest.PlatformSim, Data: b}, nil
}

func (a *Attester) signer(dir string) ([32]byte, error) {
	if a.SignerKey == "" {
		k, err := loadOrCreateKey(dir, SignerKeyFile)
		if err != nil {
			return [32]byte{}, fmt.Errorf("simulation signing key: %w", err)
		}
		return SignerDigest(k.Public())
	}
	b, err := os.ReadFile(a.SignerKey)
	if err != nil {
		return [32]byte{}, fmt.Errorf("simulation signing key: %w", err)
	}
	pub, err := parsePublicKey(b)
	if err != nil {
		return [32]byte{}, fmt.Errorf("simulation signing key %s: %w", filepath.Base(a.SignerKey), err)
	}
	return SignerDigest(pub)
}

// Measure returns the SHA-384 of a file: the simulated measurement.
func Measure(path string) ([48]byte, error) {
	var m [48]byte
	f, err := os.Open(path)
	if err != nil {
		return m, fmt.Errorf("measure executable: %w", err)
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return m, fmt.Errorf("measure executable: %w", err)
	}
	h.Sum(m[:0])
	return m, nil
}

// Verifier checks simulated evidence against the platform keys it trusts.
// Checks: platform, sim_format, sim_platform_key (the key id names a trusted
// key), sim_signature. A Verifier with no keys refuses everything.
type Verifier struct {
	TrustedKeys []ed25519.PublicKey
}

// Verify implements attest.Verifier. The claims it returns always have
// Insecure set: the platform key is a file any process of the user can read.
func (v *Verifier) Verify(_ context.Context, ev *attest.Evidence, opts attest.VerifyOptions) (*attest.Claims, error) {
	if ev == nil || ev.Platform != attest.PlatformSim {
		return nil, attest.Fail("platform", "not simulated evidence")
	}
	r, err := ParseReport(ev.Data)
	if err != nil {
		return nil, attest.Fail("sim_format", "%w", err)
	}
	var key ed25519.PublicKey
	for _, k := range v.TrustedKeys {
		id := KeyID(k)
		if subtle.ConstantTimeCompare(id[:], r.KeyID[:]) == 1 {
			key = k
			break
		}
	}
	if key == nil {
		return nil, attest.Fail("sim_platform_key", "evidence is signed by simulation platform key %x…, which this verifier does not trust", r.KeyID[:8])
	}
	if !ed25519.Verify(key, r.Raw[:SignedSize], r.Signature[:]) {
		return nil, attest.Fail("sim_signature", "simulated evidence signature does not verify")
	}
	digest := sha256.Sum256(r.Raw)
	return &attest.Claims{
		Platform:        attest.PlatformSim,
		TEEType:         TEEType,
		EvidenceVersion: int(r.Version),
		Insecure:        true,
		Measurement:     attest.Hex(bytes.Clone(r.Measurement[:])),
		Signer:          attest.Hex(bytes.Clone(r.Signer[:])),
		ReportData:      attest.Hex(bytes.Clone(r.ReportData[:])),
		VerifiedAt:      opts.Now(),
		EvidenceDigest:  attest.Hex(digest[:]),
	}, nil
}
