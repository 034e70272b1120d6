// Package policy holds a data owner's rules for releasing one key and
// evaluates verified attestation claims against them.
//
// A policy is a YAML or JSON document (docs/policy.md) decoded strictly:
// unknown fields, duplicate keys, malformed hex and unknown TCB statuses are
// errors. Evaluation denies by default: an empty policy denies everything,
// a platform is accepted only when it is listed (the simulated TEE "sim"
// included), and every denial names the rule that failed.
package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ppml/ppml/attest"
)

// Version is the only policy document version this package reads.
const Version = 1

// MaxSize bounds a policy document.
const MaxSize = 1 << 20

// Policy is one key's release policy.
type Policy struct {
	Version int `json:"version" yaml:"version"`
	// Platforms maps each accepted platform (sgx, tdx, snp, sim) to its
	// rules. A platform that is not listed is refused.
	Platforms map[attest.Platform]*PlatformRules `json:"platforms,omitempty" yaml:"platforms,omitempty"`
	// Jobs are the accepted job manifest digests (SHA-256); empty accepts any job.
	Jobs []JobDigest `json:"jobs,omitempty" yaml:"jobs,omitempty"`
	// NotBefore and NotAfter bound when the policy releases anything.
	NotBefore *time.Time `json:"not_before,omitempty" yaml:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty" yaml:"not_after,omitempty"`
}

// PlatformRules are the rules for one platform.
type PlatformRules struct {
	// Measurements are accepted code identities (MRENCLAVE, MRTD, SNP
	// MEASUREMENT, the simulated binary's SHA-384). Signers are accepted
	// MRSIGNERs (or the simulation signer digest). At least one of the two
	// lists must be given; when both are, both must match.
	Measurements []attest.Hex `json:"measurements,omitempty" yaml:"measurements,omitempty"`
	Signers      []attest.Hex `json:"signers,omitempty" yaml:"signers,omitempty"`
	// ProductID, when set, must equal the claims' product id.
	ProductID *uint16 `json:"product_id,omitempty" yaml:"product_id,omitempty"`
	// MinSecurityVersion is the lowest accepted ISVSVN / GUEST_SVN.
	MinSecurityVersion uint32 `json:"min_security_version,omitempty" yaml:"min_security_version,omitempty"`
	// TCBStatuses are the accepted TCB statuses; empty means UpToDate only.
	TCBStatuses []string `json:"tcb_statuses,omitempty" yaml:"tcb_statuses,omitempty"`
	// AllowedAdvisories lists advisory ids (INTEL-SA-00615, ...) that may
	// appear in the claims; any other advisory denies.
	AllowedAdvisories []string `json:"allowed_advisories,omitempty" yaml:"allowed_advisories,omitempty"`
	// AllowDebug accepts a debuggable TEE. Never do this for real data.
	AllowDebug bool `json:"allow_debug,omitempty" yaml:"allow_debug,omitempty"`
	// SNP guest policy constraints (platform snp only).
	// AllowMigrationAgent accepts a guest whose policy allows a migration agent.
	AllowMigrationAgent bool `json:"allow_migration_agent,omitempty" yaml:"allow_migration_agent,omitempty"`
	// AllowSMT, when false, refuses a guest whose policy allows SMT
	// (hyper-threading); absent accepts both.
	AllowSMT *bool `json:"allow_smt,omitempty" yaml:"allow_smt,omitempty"`

	// The parts of the TCB status (sgx, tdx): the platform's own level, the
	// quoting enclave's and (tdx) the TDX module's, each checked on its own
	// besides the converged tcb_statuses. Absent: not checked.
	PlatformTCBStatuses  []string `json:"platform_tcb_statuses,omitempty" yaml:"platform_tcb_statuses,omitempty"`
	QETCBStatuses        []string `json:"qe_tcb_statuses,omitempty" yaml:"qe_tcb_statuses,omitempty"`
	TDXModuleTCBStatuses []string `json:"tdx_module_tcb_statuses,omitempty" yaml:"tdx_module_tcb_statuses,omitempty"`

	// TDX: accepted values of the runtime measurement registers and of the
	// launch-time fields the VM owner sets (48 bytes each), of the TDX
	// module's identity, rules on TD_ATTRIBUTES and XFAM bits, the lowest
	// TEE_TCB_SVN (byte by byte), and rules on the event log.
	RTMR0         []attest.Hex   `json:"rtmr0,omitempty" yaml:"rtmr0,omitempty"`
	RTMR1         []attest.Hex   `json:"rtmr1,omitempty" yaml:"rtmr1,omitempty"`
	RTMR2         []attest.Hex   `json:"rtmr2,omitempty" yaml:"rtmr2,omitempty"`
	RTMR3         []attest.Hex   `json:"rtmr3,omitempty" yaml:"rtmr3,omitempty"`
	MRConfigID    []attest.Hex   `json:"mrconfigid,omitempty" yaml:"mrconfigid,omitempty"`
	MROwner       []attest.Hex   `json:"mrowner,omitempty" yaml:"mrowner,omitempty"`
	MROwnerConfig []attest.Hex   `json:"mrownerconfig,omitempty" yaml:"mrownerconfig,omitempty"`
	MRSeam        []attest.Hex   `json:"mrseam,omitempty" yaml:"mrseam,omitempty"`
	MRSignerSeam  []attest.Hex   `json:"mrsignerseam,omitempty" yaml:"mrsignerseam,omitempty"`
	TDAttributes  *BitRule       `json:"td_attributes,omitempty" yaml:"td_attributes,omitempty"`
	XFAM          *BitRule       `json:"xfam,omitempty" yaml:"xfam,omitempty"`
	MinTEETCBSVN  attest.Hex     `json:"min_tee_tcb_svn,omitempty" yaml:"min_tee_tcb_svn,omitempty"`
	EventLog      []EventLogRule `json:"event_log,omitempty" yaml:"event_log,omitempty"`

	// SNP: the highest accepted VMPL, accepted HOST_DATA, ID and author key
	// digests, ID block family and image ids and chip ids, the accepted
	// signing keys, rules on guest policy and PLATFORM_INFO bits, and the
	// lowest accepted security patch level per firmware component.
	MaxVMPL         *uint8       `json:"max_vmpl,omitempty" yaml:"max_vmpl,omitempty"`
	HostData        []attest.Hex `json:"host_data,omitempty" yaml:"host_data,omitempty"`
	IDKeyDigest     []attest.Hex `json:"id_key_digest,omitempty" yaml:"id_key_digest,omitempty"`
	AuthorKeyDigest []attest.Hex `json:"author_key_digest,omitempty" yaml:"author_key_digest,omitempty"`
	FamilyID        []attest.Hex `json:"family_id,omitempty" yaml:"family_id,omitempty"`
	ImageID         []attest.Hex `json:"image_id,omitempty" yaml:"image_id,omitempty"`
	ChipID          []attest.Hex `json:"chip_id,omitempty" yaml:"chip_id,omitempty"`
	SigningKeys     []string     `json:"signing_keys,omitempty" yaml:"signing_keys,omitempty"`
	GuestPolicy     *BitRule     `json:"guest_policy,omitempty" yaml:"guest_policy,omitempty"`
	PlatformInfo    *BitRule     `json:"platform_info,omitempty" yaml:"platform_info,omitempty"`
	MinReportedTCB  *TCBRule     `json:"min_reported_tcb,omitempty" yaml:"min_reported_tcb,omitempty"`
	MinCommittedTCB *TCBRule     `json:"min_committed_tcb,omitempty" yaml:"min_committed_tcb,omitempty"`
	MinLaunchTCB    *TCBRule     `json:"min_launch_tcb,omitempty" yaml:"min_launch_tcb,omitempty"`
	// MinFirmwareVersion is the lowest accepted SEV firmware version
	// running now, and MinCommittedFirmwareVersion the lowest accepted
	// committed version (what the host cannot roll the firmware back
	// below): "major.minor.build", or "major.minor" for build 0.
	MinFirmwareVersion          *string `json:"min_firmware_version,omitempty" yaml:"min_firmware_version,omitempty"`
	MinCommittedFirmwareVersion *string `json:"min_committed_firmware_version,omitempty" yaml:"min_committed_firmware_version,omitempty"`
}

// TCB statuses a verifier may report (Intel's names; the SEV-SNP verifier
// uses the same where they apply).
const (
	TCBUpToDate                          = "UpToDate"
	TCBSWHardeningNeeded                 = "SWHardeningNeeded"
	TCBConfigurationNeeded               = "ConfigurationNeeded"
	TCBConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	TCBOutOfDate                         = "OutOfDate"
	TCBOutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	TCBRevoked                           = "Revoked"
	TCBLevelNotSupported                 = "TCB_LEVEL_NOT_SUPPORTED"
)

// KnownTCBStatuses are the statuses a policy may list.
var KnownTCBStatuses = []string{
	TCBUpToDate, TCBSWHardeningNeeded, TCBConfigurationNeeded, TCBConfigurationAndSWHardeningNeeded,
	TCBOutOfDate, TCBOutOfDateConfigurationNeeded,
}

// unusableTCBStatuses are statuses that say the TCB cannot be trusted at
// all, with the reason a policy may never accept them.
var unusableTCBStatuses = map[string]string{
	TCBRevoked:           "Intel revoked this TCB level",
	TCBLevelNotSupported: "Intel lists no TCB level for the platform's security versions, so nothing is known about its patch state (Intel's own verification library refuses such quotes)",
}

// checkTCBStatuses validates one list of accepted statuses.
func checkTCBStatuses(field string, list []string) error {
	for _, s := range list {
		if why, bad := unusableTCBStatuses[s]; bad {
			return fmt.Errorf("%s: %s can never be accepted: %s", field, s, why)
		}
		if !slices.Contains(KnownTCBStatuses, s) {
			return fmt.Errorf("%s: unknown status %q (known: %s)", field, s, strings.Join(KnownTCBStatuses, ", "))
		}
	}
	return nil
}

// measurementSize and signerSize are the byte sizes per hardware platform
// (0: not checked).
var measurementSize = map[attest.Platform]int{attest.PlatformSGX: 32, attest.PlatformTDX: 48, attest.PlatformSNP: 48, attest.PlatformSim: 48}
var signerSize = map[attest.Platform]int{attest.PlatformSGX: 32, attest.PlatformTDX: 0, attest.PlatformSNP: 0, attest.PlatformSim: 32}

// Parse decodes and validates a YAML or JSON policy document (JSON is read
// as the YAML subset it is). Unknown fields and duplicate keys are errors.
func Parse(doc []byte) (p *Policy, err error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("policy: document of %d bytes exceeds %d", len(doc), MaxSize)
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, errors.New("policy: empty document")
	}
	defer func() {
		// The YAML library is third-party code parsing untrusted bytes:
		// whatever it does, the caller gets an error, not a crash.
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("policy: document could not be parsed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	var out Policy
	if err := dec.Decode(&out); err != nil {
		// yaml.v3 lists several problems on separate lines; keep one line.
		msg := strings.ReplaceAll(err.Error(), "unmarshal errors:\n  ", "")
		return nil, fmt.Errorf("policy: %s", yamlProblem(strings.ReplaceAll(msg, "\n  ", "; ")))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("policy: more than one document")
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

// Validate checks a policy's consistency; Parse calls it, and Evaluate
// denies a policy that fails it.
func (p *Policy) Validate() error {
	if p.Version == 0 {
		return fmt.Errorf("policy: no version (start the document with version: %d)", Version)
	}
	if p.Version != Version {
		return fmt.Errorf("policy: version %d is not supported (want version: %d)", p.Version, Version)
	}
	if p.NotBefore != nil && p.NotAfter != nil && !p.NotAfter.After(*p.NotBefore) {
		return fmt.Errorf("policy: not_after %s is not after not_before %s", p.NotAfter.Format(time.RFC3339), p.NotBefore.Format(time.RFC3339))
	}
	for i, j := range p.Jobs {
		if len(j) != 32 {
			return fmt.Errorf("policy: jobs[%d]: %d bytes, want a 32-byte SHA-256 digest", i, len(j))
		}
	}
	for name, r := range p.Platforms {
		if err := validatePlatform(name, r); err != nil {
			return fmt.Errorf("policy: platforms.%s: %w", name, err)
		}
	}
	return nil
}

func validatePlatform(name attest.Platform, r *PlatformRules) error {
	msize, known := measurementSize[name]
	if !known {
		return fmt.Errorf("unknown platform (want sgx, tdx, snp or sim)")
	}
	if r == nil {
		return errors.New("no rules: list measurements or signers")
	}
	if len(r.Measurements) == 0 && len(r.Signers) == 0 {
		return errors.New("list measurements or signers (or both): a platform with neither would accept any code")
	}
	for i, m := range r.Measurements {
		if len(m) == 0 || (msize != 0 && len(m) != msize) {
			return fmt.Errorf("measurements[%d]: %d bytes, want %d", i, len(m), msize)
		}
	}
	if len(r.Signers) > 0 && name != attest.PlatformSGX && name != attest.PlatformSim {
		return fmt.Errorf("signers apply to sgx and sim only: %s evidence names no signer", name)
	}
	ssize := signerSize[name]
	for i, s := range r.Signers {
		if len(s) == 0 || (ssize != 0 && len(s) != ssize) {
			return fmt.Errorf("signers[%d]: %d bytes, want %d", i, len(s), ssize)
		}
	}
	if err := checkTCBStatuses("tcb_statuses", r.TCBStatuses); err != nil {
		return err
	}
	for i, a := range r.AllowedAdvisories {
		if strings.TrimSpace(a) == "" || a != strings.TrimSpace(a) {
			return fmt.Errorf("allowed_advisories[%d]: %q is not an advisory id", i, a)
		}
	}
	if name != attest.PlatformSNP && (r.AllowMigrationAgent || r.AllowSMT != nil) {
		return errors.New("allow_migration_agent and allow_smt apply to platform snp only")
	}
	return validateFields(name, r)
}

// MarshalYAML-compatible output for `ppml policy get`.

// YAML encodes the policy as YAML.
func (p *Policy) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("policy: encode: %w", err)
	}
	enc.Close()
	return buf.Bytes(), nil
}

// JSON encodes the policy as JSON.
func (p *Policy) JSON() ([]byte, error) { return json.Marshal(p) }

// JobDigest is a job identity in the form `ppml job digest` prints it,
// "sha256:<64 hex digits>"; the bare hex digits are accepted too, so a digest
// can be pasted from either the CLI or an audit entry.
type JobDigest []byte

const jobDigestPrefix = "sha256:"

func (d JobDigest) String() string { return jobDigestPrefix + hex.EncodeToString(d) }

func (d JobDigest) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d JobDigest) MarshalYAML() (any, error) { return d.String(), nil }

func (d *JobDigest) UnmarshalJSON(b []byte) error {
	var h attest.Hex
	if err := h.UnmarshalJSON(stripDigestPrefixJSON(b)); err != nil {
		return err
	}
	*d = JobDigest(h)
	return nil
}

func (d *JobDigest) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		c := *n
		c.Value = strings.TrimPrefix(c.Value, jobDigestPrefix)
		n = &c
	}
	var h attest.Hex
	if err := h.UnmarshalYAML(n); err != nil {
		return err
	}
	*d = JobDigest(h)
	return nil
}

// stripDigestPrefixJSON removes the "sha256:" prefix from a JSON string literal.
func stripDigestPrefixJSON(b []byte) []byte {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return b // let attest.Hex report the error
	}
	out, _ := json.Marshal(strings.TrimPrefix(s, jobDigestPrefix))
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var (
	yamlUnknownField = regexp.MustCompile(`field (\S+) not found in type [\w.]+`)
	yamlWrongKind    = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*`|\\S+ ?)?\\s*into (\\S+)")
)

// yamlProblem rewrites the YAML decoder's messages, which name Go types
// (policy.Policy, []string), into the words of the document.
func yamlProblem(msg string) string {
	msg = yamlUnknownField.ReplaceAllString(msg, "unknown field $1")
	return yamlWrongKind.ReplaceAllStringFunc(msg, func(m string) string {
		sub := yamlWrongKind.FindStringSubmatch(m)
		got := map[string]string{"str": "a string", "int": "a number", "float": "a number", "bool": "true/false", "seq": "a list", "map": "a mapping", "null": "empty"}[sub[1]]
		if got == "" {
			got = sub[1]
		}
		val := strings.TrimSpace(sub[2])
		if val != "" {
			val += " "
		}
		if want := yamlKind(sub[3]); want != got {
			return fmt.Sprintf("%sis %s where %s is expected", val, got, want)
		}
		return fmt.Sprintf("%sis out of range", val)
	})
}

func yamlKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "a mapping"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true/false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return "another kind of value"
}
