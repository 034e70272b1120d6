// Package snp parses and verifies AMD SEV-SNP attestation reports.
//
// The layout follows AMD's SEV Secure Nested Paging Firmware ABI
// specification (publication 56860), table "ATTESTATION_REPORT Structure",
// report versions 2 and 3. Parsing (this file, certtable.go) is kept apart
// from the chain and signature checks (verify.go) so that `ppml attest
// inspect` can show every field of a report it cannot verify.
package snp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ppml/ppml/attest"
)

// Sizes and offsets of the attestation report.
const (
	ReportSize      = 0x4A0 // whole report, signature included
	SignedSize      = 0x2A0 // the signature covers bytes [0, SignedSize)
	sigComponentLen = 72    // R and S are 72-byte little-endian fields
	p384Len         = 48    // only the low 48 bytes of R and S may be non-zero

	// SigAlgoECDSAP384SHA384 is the only SIGNATURE_ALGO firmware uses.
	SigAlgoECDSAP384SHA384 = 1
)

// Report versions this package understands. Versions 4 and 5 add fields in
// the reserved area; they are refused until they are implemented and tested.
var supportedVersions = map[uint32]bool{2: true, 3: true}

// SigningKey says which key the firmware signed the report with.
type SigningKey uint8

const (
	SigningKeyVCEK SigningKey = 0
	SigningKeyVLEK SigningKey = 1
	SigningKeyNone SigningKey = 7
)

func (k SigningKey) String() string {
	switch k {
	case SigningKeyVCEK:
		return "vcek"
	case SigningKeyVLEK:
		return "vlek"
	case SigningKeyNone:
		return "none"
	}
	return fmt.Sprintf("reserved(%d)", uint8(k))
}

// Guest policy bits (SNP ABI "GUEST_POLICY Structure").
const (
	PolicySMT         = 1 << 16 // SMT may be enabled on the host
	PolicyReserved1   = 1 << 17 // must be one
	PolicyMigrateMA   = 1 << 18 // a migration agent may be associated
	PolicyDebug       = 1 << 19 // the hypervisor may debug (read) the guest
	PolicySingleSock  = 1 << 20
	PolicyCXLAllow    = 1 << 21
	PolicyMemAES256   = 1 << 22
	PolicyRAPLDis     = 1 << 23
	PolicyCiphertextH = 1 << 24
	PolicyPageSwapDis = 1 << 25
)

// Report is a parsed SEV-SNP attestation report. Byte arrays are copies of
// the report fields; Raw holds the exact bytes that were parsed.
type Report struct {
	Version         uint32   `json:"version"`
	GuestSVN        uint32   `json:"guest_svn"`
	Policy          uint64   `json:"policy"`
	FamilyID        [16]byte `json:"-"`
	ImageID         [16]byte `json:"-"`
	VMPL            uint32   `json:"vmpl"`
	SignatureAlgo   uint32   `json:"signature_algo"`
	CurrentTCB      uint64   `json:"current_tcb"`
	PlatformInfo    uint64   `json:"platform_info"`
	AuthorKeyEn     bool     `json:"author_key_en"`
	MaskChipKey     bool     `json:"mask_chip_key"`
	SigningKey      SigningKey
	ReportData      [64]byte `json:"-"`
	Measurement     [48]byte `json:"-"`
	HostData        [32]byte `json:"-"`
	IDKeyDigest     [48]byte `json:"-"`
	AuthorKeyDigest [48]byte `json:"-"`
	ReportID        [32]byte `json:"-"`
	ReportIDMA      [32]byte `json:"-"`
	ReportedTCB     uint64   `json:"reported_tcb"`
	// CPUID family, model and stepping exist from version 3 on; zero in v2.
	CPUIDFamily    uint8    `json:"cpuid_fam_id"`
	CPUIDModel     uint8    `json:"cpuid_mod_id"`
	CPUIDStepping  uint8    `json:"cpuid_step"`
	ChipID         [64]byte `json:"-"`
	CommittedTCB   uint64   `json:"committed_tcb"`
	CurrentBuild   uint8    `json:"current_build"`
	CurrentMinor   uint8    `json:"current_minor"`
	CurrentMajor   uint8    `json:"current_major"`
	CommittedBuild uint8    `json:"committed_build"`
	CommittedMinor uint8    `json:"committed_minor"`
	CommittedMajor uint8    `json:"committed_major"`
	LaunchTCB      uint64   `json:"launch_tcb"`
	// SignatureR and SignatureS are big-endian P-384 scalars (converted from
	// the report's little-endian encoding).
	SignatureR [p384Len]byte `json:"-"`
	SignatureS [p384Len]byte `json:"-"`

	Raw []byte `json:"-"`
}

// ErrTruncated is returned (wrapped) for reports shorter than ReportSize.
var ErrTruncated = errors.New("truncated")

// ParseReport parses an attestation report. Trailing bytes after ReportSize
// are accepted only when they are zero padding (some tools hand out the
// firmware's whole response page).
func ParseReport(b []byte) (*Report, error) {
	if len(b) < ReportSize {
		return nil, fmt.Errorf("SNP report: %w: %d bytes, want %d", ErrTruncated, len(b), ReportSize)
	}
	for i := ReportSize; i < len(b); i++ {
		if b[i] != 0 {
			return nil, fmt.Errorf("SNP report: %d bytes, want %d (non-zero trailing byte at offset %#x)", len(b), ReportSize, i)
		}
	}
	b = b[:ReportSize]
	le := binary.LittleEndian
	r := &Report{Raw: append([]byte(nil), b...)}
	r.Version = le.Uint32(b[0x00:])
	if !supportedVersions[r.Version] {
		return nil, fmt.Errorf("SNP report: unsupported version %d (supported: 2, 3)", r.Version)
	}
	r.GuestSVN = le.Uint32(b[0x04:])
	r.Policy = le.Uint64(b[0x08:])
	copy(r.FamilyID[:], b[0x10:0x20])
	copy(r.ImageID[:], b[0x20:0x30])
	r.VMPL = le.Uint32(b[0x30:])
	r.SignatureAlgo = le.Uint32(b[0x34:])
	if r.SignatureAlgo != SigAlgoECDSAP384SHA384 {
		return nil, fmt.Errorf("SNP report: unknown signature algorithm %d (want 1, ECDSA P-384 with SHA-384)", r.SignatureAlgo)
	}
	r.CurrentTCB = le.Uint64(b[0x38:])
	r.PlatformInfo = le.Uint64(b[0x40:])
	flags := le.Uint32(b[0x48:])
	r.AuthorKeyEn = flags&1 != 0
	r.MaskChipKey = flags&2 != 0
	r.SigningKey = SigningKey((flags >> 2) & 7)
	copy(r.ReportData[:], b[0x50:0x90])
	copy(r.Measurement[:], b[0x90:0xC0])
	copy(r.HostData[:], b[0xC0:0xE0])
	copy(r.IDKeyDigest[:], b[0xE0:0x110])
	copy(r.AuthorKeyDigest[:], b[0x110:0x140])
	copy(r.ReportID[:], b[0x140:0x160])
	copy(r.ReportIDMA[:], b[0x160:0x180])
	r.ReportedTCB = le.Uint64(b[0x180:])
	if r.Version >= 3 {
		r.CPUIDFamily, r.CPUIDModel, r.CPUIDStepping = b[0x188], b[0x189], b[0x18A]
	}
	copy(r.ChipID[:], b[0x1A0:0x1E0])
	r.CommittedTCB = le.Uint64(b[0x1E0:])
	r.CurrentBuild, r.CurrentMinor, r.CurrentMajor = b[0x1E8], b[0x1E9], b[0x1EA]
	r.CommittedBuild, r.CommittedMinor, r.CommittedMajor = b[0x1EC], b[0x1ED], b[0x1EE]
	r.LaunchTCB = le.Uint64(b[0x1F0:])

	sig := b[SignedSize:]
	rLE, sLE := sig[:sigComponentLen], sig[sigComponentLen:2*sigComponentLen]
	// A P-384 scalar fits in 48 bytes; the firmware zero-fills the rest, and
	// so must anyone else, or a signature could have many encodings.
	if !allZero(rLE[p384Len:]) || !allZero(sLE[p384Len:]) {
		return nil, errors.New("SNP report: signature R or S has non-zero bytes beyond 48")
	}
	if off := firstNonZero(sig[2*sigComponentLen:]); off >= 0 {
		return nil, fmt.Errorf("SNP report: reserved signature bytes are not zero (offset %#x)", SignedSize+2*sigComponentLen+off)
	}
	for i := 0; i < p384Len; i++ {
		r.SignatureR[i] = rLE[p384Len-1-i]
		r.SignatureS[i] = sLE[p384Len-1-i]
	}
	return r, nil
}

func allZero(b []byte) bool { return firstNonZero(b) < 0 }

func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// CurrentVersion is the firmware version running when the report was made.
func (r *Report) CurrentVersion() attest.SNPFirmwareVersion {
	return attest.SNPFirmwareVersion{Major: r.CurrentMajor, Minor: r.CurrentMinor, Build: r.CurrentBuild}
}

// CommittedVersion is the lowest firmware version the platform can be
// rolled back to.
func (r *Report) CommittedVersion() attest.SNPFirmwareVersion {
	return attest.SNPFirmwareVersion{Major: r.CommittedMajor, Minor: r.CommittedMinor, Build: r.CommittedBuild}
}

// Debug reports whether the guest policy allows the hypervisor to debug the guest.
func (r *Report) Debug() bool { return r.Policy&PolicyDebug != 0 }

// MigrationAgent reports whether the guest policy allows a migration agent.
func (r *Report) MigrationAgent() bool { return r.Policy&PolicyMigrateMA != 0 }

// SMTAllowed reports whether the guest policy allows SMT on the host.
func (r *Report) SMTAllowed() bool { return r.Policy&PolicySMT != 0 }

// Product is an AMD EPYC generation; the TCB layout and the root of trust depend on it.
type Product string

const (
	Milan Product = "Milan"
	Genoa Product = "Genoa"
	Turin Product = "Turin"
)

// TCB is a TCB_VERSION split into its security patch levels.
type TCB struct {
	FMC        uint8 `json:"fmc"` // Turin only
	Bootloader uint8 `json:"bootloader"`
	TEE        uint8 `json:"tee"`
	SNP        uint8 `json:"snp"`
	Microcode  uint8 `json:"microcode"`
}

// DecodeTCB splits a TCB_VERSION. Milan and Genoa put the boot loader in
// byte 0, TEE in byte 1, SNP in byte 6 and microcode in byte 7; Turin adds
// the FMC in byte 0 and shifts boot loader, TEE and SNP to bytes 1-3.
func DecodeTCB(p Product, v uint64) TCB {
	b := func(i uint) uint8 { return uint8(v >> (8 * i)) }
	if p == Turin {
		return TCB{FMC: b(0), Bootloader: b(1), TEE: b(2), SNP: b(3), Microcode: b(7)}
	}
	return TCB{Bootloader: b(0), TEE: b(1), SNP: b(6), Microcode: b(7)}
}

// ProductFromCPUID maps the report v3 CPUID fields to a product, or "" when
// they are absent (v2) or unknown.
func ProductFromCPUID(family, model uint8) Product {
	switch {
	case family == 0x19 && model>>4 == 0:
		return Milan
	case family == 0x19 && model>>4 == 1:
		return Genoa
	case family == 0x1A && model < 0x20:
		return Turin
	}
	return ""
}
