// Package sim is the simulated TEE: an attester and a verifier with the same
// shape as the hardware ones, for development and CI. It protects nothing.
// Its evidence is signed by a per-machine Ed25519 "platform key" that any
// process of the same user can read, so every claim it yields is marked
// Insecure, and its verifier accepts only platform keys it was given.
//
// Evidence format (all integers little-endian; docs/formats/evidence.md):
//
//	off  len  field
//	  0    8  magic "PPMLSIM1"
//	  8    2  version, 1
//	 10    2  algorithm, 1 = Ed25519
//	 12    4  flags; bit 0 INSECURE must be set, other bits zero
//	 16    8  timestamp, Unix seconds (informational; freshness comes from report_data)
//	 24   64  report_data
//	 88   48  measurement: SHA-384 of the attesting executable
//	136   32  signer: SHA-256 of the signing key's SubjectPublicKeyInfo DER
//	168   32  platform key id: SHA-256 of the raw 32-byte Ed25519 platform public key
//	200   64  Ed25519 signature by the platform key over bytes [0, 200)
//	264       end
package sim

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Layout of the simulated evidence.
const (
	Magic        = "PPMLSIM1"
	Version      = 1
	AlgEd25519   = 1
	FlagInsecure = 1

	offReportData  = 24
	offMeasurement = 88
	offSigner      = 136
	offKeyID       = 168
	SignedSize     = 200
	EvidenceSize   = SignedSize + ed25519.SignatureSize
)

// Report is parsed simulated evidence.
type Report struct {
	Version     uint16    `json:"version"`
	Algorithm   uint16    `json:"algorithm"`
	Flags       uint32    `json:"flags"`
	Timestamp   time.Time `json:"timestamp"`
	ReportData  [64]byte  `json:"-"`
	Measurement [48]byte  `json:"-"`
	Signer      [32]byte  `json:"-"`
	KeyID       [32]byte  `json:"-"`
	Signature   [64]byte  `json:"-"`
	Raw         []byte    `json:"-"`
}

// IsSimEvidence reports whether b starts with the simulated evidence magic.
func IsSimEvidence(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// ParseReport parses simulated evidence; it checks the format, not the signature.
func ParseReport(b []byte) (*Report, error) {
	if !IsSimEvidence(b) {
		return nil, errors.New("simulated evidence: bad magic (not PPMLSIM1)")
	}
	if len(b) != EvidenceSize {
		return nil, fmt.Errorf("simulated evidence: %d bytes, want %d", len(b), EvidenceSize)
	}
	le := binary.LittleEndian
	r := &Report{Raw: append([]byte(nil), b...)}
	r.Version = le.Uint16(b[8:])
	if r.Version != Version {
		return nil, fmt.Errorf("simulated evidence: unsupported version %d (supported: 1)", r.Version)
	}
	r.Algorithm = le.Uint16(b[10:])
	if r.Algorithm != AlgEd25519 {
		return nil, fmt.Errorf("simulated evidence: unknown algorithm %d (supported: 1, Ed25519)", r.Algorithm)
	}
	r.Flags = le.Uint32(b[12:])
	if r.Flags != FlagInsecure {
		return nil, fmt.Errorf("simulated evidence: flags %#x, want %#x (INSECURE set, nothing else)", r.Flags, FlagInsecure)
	}
	r.Timestamp = time.Unix(int64(le.Uint64(b[16:])), 0).UTC()
	copy(r.ReportData[:], b[offReportData:])
	copy(r.Measurement[:], b[offMeasurement:])
	copy(r.Signer[:], b[offSigner:])
	copy(r.KeyID[:], b[offKeyID:])
	copy(r.Signature[:], b[SignedSize:])
	return r, nil
}

// body encodes the signed part of the evidence.
func body(ts time.Time, reportData [64]byte, measurement [48]byte, signer, keyID [32]byte) []byte {
	b := make([]byte, SignedSize, EvidenceSize)
	le := binary.LittleEndian
	copy(b, Magic)
	le.PutUint16(b[8:], Version)
	le.PutUint16(b[10:], AlgEd25519)
	le.PutUint32(b[12:], FlagInsecure)
	le.PutUint64(b[16:], uint64(ts.Unix()))
	copy(b[offReportData:], reportData[:])
	copy(b[offMeasurement:], measurement[:])
	copy(b[offSigner:], signer[:])
	copy(b[offKeyID:], keyID[:])
	return b
}
