// Package attest defines what every TEE backend shares: the evidence a TEE
// produces, the normalized claims a verifier derives from it, and the
// interfaces attesters (evidence producers) and verifiers implement.
//
// Parsing lives in per-platform packages (attest/sgx, attest/tdx, attest/snp,
// attest/sim), chain and collateral checks beside them; this package holds no
// platform logic so that the key service and the launcher never need to know
// which backend they talk to.
package attest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Platform names a TEE technology.
type Platform string

const (
	PlatformSGX Platform = "sgx" // Intel SGX enclave, DCAP ECDSA quote
	PlatformTDX Platform = "tdx" // Intel TDX trust domain, DCAP quote v4/v5
	PlatformSNP Platform = "snp" // AMD SEV-SNP guest, attestation report
	PlatformSim Platform = "sim" // simulated TEE: development and CI only, never secure
)

// ReportDataSize is the number of caller-chosen bytes every platform binds into evidence.
const ReportDataSize = 64

// Evidence is what a TEE hands to a verifier.
type Evidence struct {
	Platform Platform `json:"platform"`
	// Data is the raw quote (SGX, TDX), attestation report (SNP) or simulated evidence.
	Data []byte `json:"data"`
	// Aux carries platform-specific certificates that travel with the evidence:
	// for SNP the certificate table from configfs-tsm's auxblob (VCEK or VLEK,
	// optionally ASK/ASVK and ARK). Roots in it are never trusted.
	Aux []byte `json:"aux,omitempty"`
	// EventLog is, for TDX, the TCG2 event log of the ACPI CCEL table. It is
	// trusted for an RTMR only when replaying it gives the quoted value.
	EventLog []byte `json:"event_log,omitempty"`
}

// Hex is ppml's one byte-string type written as hex: lower-case in JSON and
// YAML output, either case accepted on input, no prefix. Claims, quotes,
// policies, audit entries and Intel's collateral all use it.
type Hex []byte

func (h Hex) String() string { return hex.EncodeToString(h) }

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return h.set(s)
}

func (h Hex) MarshalYAML() (any, error) { return hex.EncodeToString(h), nil }

// UnmarshalYAML names the line of a value that is not hex, so that a
// policy author finds it.
func (h *Hex) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a hex string", n.Line)
	}
	if err := h.set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

func (h *Hex) set(s string) error {
	v, err := hex.DecodeString(s)
	if err != nil {
		if len(s) > 80 {
			s = s[:80] + "..."
		}
		return fmt.Errorf("%q is not hex: %w", s, err)
	}
	*h = v
	return nil
}

// Claims is the normalized result of verifying evidence. Fields that a platform
// does not have are left empty. Only a verifier constructs Claims; a Claims
// value means every check named in the verifier's documentation passed.
type Claims struct {
	Platform Platform `json:"platform"`
	// TEEType says what kind of TEE within the platform, e.g. "sgx-enclave",
	// "tdx-td", "sev-snp-guest", "simulated".
	TEEType string `json:"tee_type"`
	// EvidenceVersion is the quote or report format version (3, 4, 5; SNP 2, 3).
	EvidenceVersion int `json:"evidence_version"`
	// Insecure is true for the simulated TEE and anything else that offers no
	// hardware protection. Policies refuse it unless they list it explicitly.
	Insecure bool `json:"insecure"`

	// Measurement is the platform's primary code identity: MRENCLAVE (SGX),
	// MRTD (TDX), MEASUREMENT (SNP), SHA-384 of the executable (simulated).
	Measurement Hex `json:"measurement"`
	// Signer is the identity of who signed the code: MRSIGNER (SGX), the
	// digest of the simulation signing key (simulated); empty where the
	// platform has none.
	Signer Hex `json:"signer,omitempty"`

	// SGX
	MREnclave Hex `json:"mrenclave,omitempty"`
	MRSigner  Hex `json:"mrsigner,omitempty"`
	// TDX
	MRTD          Hex   `json:"mrtd,omitempty"`
	RTMR          []Hex `json:"rtmr,omitempty"`
	MRSeam        Hex   `json:"mrseam,omitempty"`
	MRSignerSeam  Hex   `json:"mrsignerseam,omitempty"`
	MRConfigID    Hex   `json:"mrconfigid,omitempty"`
	MROwner       Hex   `json:"mrowner,omitempty"`
	MROwnerConfig Hex   `json:"mrownerconfig,omitempty"`
	// TEETCBSVN is the TDX module's and platform's security versions
	// (byte 0 the module SVN, byte 1 its major version); TD 1.5 quotes add
	// TEETCBSVN2 and MRServiceTD.
	TEETCBSVN   Hex `json:"tee_tcb_svn,omitempty"`
	TEETCBSVN2  Hex `json:"tee_tcb_svn_2,omitempty"`
	MRServiceTD Hex `json:"mrservicetd,omitempty"`
	// TDAttributes and XFAM decode TD_ATTRIBUTES (also in Attributes, raw
	// bytes) and the TD's extended feature mask.
	TDAttributes *Flags `json:"td_attributes,omitempty"`
	XFAM         *Flags `json:"xfam,omitempty"`
	// EventLog is set when the evidence came with a TDX event log: what it
	// proves about RTMR0-3.
	EventLog *EventLog `json:"event_log,omitempty"`

	// SNP
	HostData        Hex `json:"host_data,omitempty"`
	IDKeyDigest     Hex `json:"id_key_digest,omitempty"`
	AuthorKeyDigest Hex `json:"author_key_digest,omitempty"`
	FamilyID        Hex `json:"family_id,omitempty"`
	ImageID         Hex `json:"image_id,omitempty"`
	ChipID          Hex `json:"chip_id,omitempty"`
	// SNPProduct is the AMD EPYC generation (Milan, Genoa, Turin) whose
	// layout decodes the TCB versions.
	SNPProduct string `json:"snp_product,omitempty"`
	// ReportedTCB is the TCB the report was signed for (the one the VCEK
	// or VLEK certifies); CommittedTCB the lowest the firmware can be
	// rolled back to; LaunchTCB the current TCB when the guest launched;
	// CurrentTCB the one installed now.
	ReportedTCB  *SNPTCB         `json:"reported_tcb,omitempty"`
	CommittedTCB *SNPTCB         `json:"committed_tcb,omitempty"`
	LaunchTCB    *SNPTCB         `json:"launch_tcb,omitempty"`
	CurrentTCB   *SNPTCB         `json:"current_tcb,omitempty"`
	GuestPolicy  *SNPGuestPolicy `json:"guest_policy,omitempty"`
	PlatformInfo *Flags          `json:"platform_info,omitempty"`
	// FirmwareVersion is the SEV firmware running now (CURRENT_MAJOR,
	// _MINOR, _BUILD); CommittedFirmwareVersion the lowest the host can
	// roll it back to (COMMITTED_*): SNP_COMMIT raises it to the running
	// version and nothing lowers it, so it is what rollback protection
	// guarantees.
	FirmwareVersion          *SNPFirmwareVersion `json:"firmware_version,omitempty"`
	CommittedFirmwareVersion *SNPFirmwareVersion `json:"committed_firmware_version,omitempty"`
	// VMPL is the privilege level that asked for the report (0 highest).
	VMPL *int `json:"vmpl,omitempty"`
	// MigrationAgent and SMT are SNP guest policy bits surfaced for policies.
	MigrationAgent bool `json:"migration_agent,omitempty"`
	SMTAllowed     bool `json:"smt_allowed,omitempty"`
	// Signing key used by the SNP firmware: "vcek" or "vlek".
	SigningKey string `json:"signing_key,omitempty"`

	// ProductID is ISVPRODID (SGX) or the equivalent; SecurityVersion is
	// ISVSVN (SGX), GUEST_SVN (SNP).
	ProductID       uint16 `json:"product_id"`
	SecurityVersion uint32 `json:"security_version"`
	// Debug is true when the TEE allows a debugger to read its memory. Such a
	// TEE protects nothing; policies refuse it unless explicitly allowed.
	Debug bool `json:"debug"`
	// Attributes are the raw attribute bits (SGX ATTRIBUTES, TDX TD_ATTRIBUTES).
	Attributes Hex `json:"attributes,omitempty"`

	// TCB evaluation against the vendor's collateral. TCBStatus is the
	// converged status; PlatformTCBStatus, QETCBStatus and
	// TDXModuleTCBStatus are its parts (the TDX module's only when the TCB
	// info judges the module on its own, TCB info v3 and module major
	// version above 0).
	FMSPC              Hex       `json:"fmspc,omitempty"`
	TCBStatus          string    `json:"tcb_status,omitempty"`
	PlatformTCBStatus  string    `json:"platform_tcb_status,omitempty"`
	QETCBStatus        string    `json:"qe_tcb_status,omitempty"`
	TDXModuleTCBStatus string    `json:"tdx_module_tcb_status,omitempty"`
	TCBDate            time.Time `json:"tcb_date,omitzero"`
	Advisories         []string  `json:"advisories,omitempty"`

	// ReportData is the 64 bytes the TEE bound into the evidence.
	ReportData Hex `json:"report_data"`

	// CollateralNotBefore/NotAfter is the window in which every piece of
	// collateral (certificates, CRLs, TCB info, QE identity) was valid at once.
	CollateralNotBefore time.Time `json:"collateral_not_before,omitzero"`
	CollateralNotAfter  time.Time `json:"collateral_not_after,omitzero"`
	// VerifiedAt is the verification time that was used.
	VerifiedAt time.Time `json:"verified_at"`
	// EvidenceDigest is the SHA-256 of Evidence.Data.
	EvidenceDigest Hex `json:"evidence_digest"`
}

// Verifier turns evidence into claims or says which check failed.
type Verifier interface {
	Verify(ctx context.Context, ev *Evidence, opts VerifyOptions) (*Claims, error)
}

// VerifyOptions are inputs every verifier takes.
type VerifyOptions struct {
	// Time is the verification instant; zero means now. Collateral and
	// certificates must all be valid at this time.
	Time time.Time
}

// Now returns o.Time, or the current time when it is zero.
func (o VerifyOptions) Now() time.Time {
	if o.Time.IsZero() {
		return time.Now()
	}
	return o.Time
}

// Attester produces evidence from inside a TEE.
type Attester interface {
	// Name is the backend name used on command lines: "sim", "gramine", "tsm".
	Name() string
	// Evidence returns evidence that binds reportData.
	Evidence(ctx context.Context, reportData [ReportDataSize]byte) (*Evidence, error)
}

// CheckError reports which named verification check failed. Every verifier
// returns its failures wrapped in one, so callers (the CLI's --json output,
// the key service's audit log) can name the check without parsing text.
type CheckError struct {
	Check string // stable, snake_case name, e.g. "pck_chain", "tcb_info_expired"
	Err   error
}

func (e *CheckError) Error() string { return e.Check + ": " + e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// Fail wraps err as a failure of the named check.
func Fail(check string, format string, args ...any) error {
	return &CheckError{Check: check, Err: fmt.Errorf(format, args...)}
}
