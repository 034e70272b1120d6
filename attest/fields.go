package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// U64 is a 64-bit field written in JSON as a "0x"-prefixed, 16-digit hex
// string. A JSON number above 2^53 loses digits in JavaScript and in every
// other reader that holds numbers as doubles (an SEV-SNP TCB_VERSION with a
// microcode SPL of 0xd1 is such a number). It reads a hex string, a decimal
// string, or a bare JSON number, the form claims used before.
type U64 uint64

func (v U64) String() string { return fmt.Sprintf("0x%016x", uint64(v)) }

func (v U64) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

func (v *U64) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	n, err := ParseU64(s)
	if err != nil {
		return err
	}
	*v = U64(n)
	return nil
}

func (v U64) MarshalYAML() (any, error) { return v.String(), nil }

// UnmarshalYAML reads 0x-prefixed hex or decimal, quoted or not, and names
// the line of a bad value.
func (v *U64) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a 64-bit unsigned integer", n.Line)
	}
	x, err := ParseU64(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*v = U64(x)
	return nil
}

// ParseU64 reads "0x…" hex or decimal digits.
func ParseU64(s string) (uint64, error) {
	var n uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		n, err = strconv.ParseUint(h, 16, 64)
	} else {
		n, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return 0, fmt.Errorf("%q is not a 64-bit unsigned integer (0x-prefixed hex or decimal)", s)
	}
	return n, nil
}

// Flags is a 64-bit field of named bits: TDX TD_ATTRIBUTES and XFAM, the
// SEV-SNP PLATFORM_INFO. Flags lists the names of the bits that are set,
// lowest first; a bit without a name appears as BIT<n>.
type Flags struct {
	Raw   U64      `json:"raw"`
	Flags []string `json:"flags"`
}

// BitNames names the bits of one 64-bit field; an empty name is unnamed.
type BitNames [64]string

// Flags decodes v.
func (n *BitNames) Flags(v uint64) *Flags {
	return &Flags{Raw: U64(v), Flags: n.Names(v)}
}

// Names lists the names of the bits set in v, lowest first.
func (n *BitNames) Names(v uint64) []string {
	out := []string{}
	for i := range 64 {
		if v&(1<<i) != 0 {
			out = append(out, n.Name(i))
		}
	}
	return out
}

// Name is bit i's name, or BIT<i>.
func (n *BitNames) Name(i int) string {
	if n[i] != "" {
		return n[i]
	}
	return "BIT" + strconv.Itoa(i)
}

// Bit finds a bit by name (exact case) or as BIT<n>.
func (n *BitNames) Bit(name string) (int, bool) {
	for i, s := range n {
		if s != "" && s == name {
			return i, true
		}
	}
	if d, ok := strings.CutPrefix(name, "BIT"); ok {
		if i, err := strconv.Atoi(d); err == nil && i >= 0 && i < 64 && strconv.Itoa(i) == d {
			return i, true
		}
	}
	return 0, false
}

// Known lists the named bits, lowest first.
func (n *BitNames) Known() []string {
	var out []string
	for _, s := range n {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// TDAttributeBits names the bits of TDX TD_ATTRIBUTES (Intel TDX module ABI
// specification, "TD_ATTRIBUTES"; the same names Linux uses).
var TDAttributeBits = BitNames{
	0:  "DEBUG",           // the host can read and write the TD's memory and state
	4:  "HGS_PLUS_PROF",   // HGS+ profiling
	5:  "PERF_PROF",       // performance profiling
	6:  "PMT_PROF",        // PMT profiling
	16: "ICSSD",           // in-context single-step disable
	27: "LASS",            // linear address space separation
	28: "SEPT_VE_DISABLE", // EPT violations are not converted to #VE (the guest cannot be tricked by the host's page removals)
	29: "MIGRATABLE",      // the TD may be migrated
	30: "PKS",             // supervisor protection keys
	31: "KL",              // key locker
	62: "TPA",             // TD partitioning architecture
	63: "PERFMON",         // the TD may use the performance monitoring counters
}

// XFAMBits names the bits of TDX XFAM, the extended features (XSAVE state
// components) the TD may use (Intel SDM, "XSAVE-supported features").
var XFAMBits = BitNames{
	0:  "X87",
	1:  "SSE",
	2:  "AVX",
	3:  "MPX_BNDREGS",
	4:  "MPX_BNDCSR",
	5:  "AVX512_OPMASK",
	6:  "AVX512_ZMM_HI256",
	7:  "AVX512_HI16_ZMM",
	8:  "PT",
	9:  "PKRU",
	10: "PASID",
	11: "CET_U",
	12: "CET_S",
	13: "HDC",
	14: "UINTR",
	15: "LBR",
	16: "HWP",
	17: "AMX_TILECFG",
	18: "AMX_TILEDATA",
}

// SNPGuestPolicyBits names the single-bit fields of the SEV-SNP guest
// POLICY (AMD SEV-SNP firmware ABI, "GUEST_POLICY"); bits 0-15 are the
// minimum ABI version and are reported as abi_major and abi_minor instead.
var SNPGuestPolicyBits = BitNames{
	16: "SMT",                    // the host may run SMT (hyper-threading)
	17: "RESERVED_1",             // must be one
	18: "MIGRATE_MA",             // a migration agent may be associated with the guest
	19: "DEBUG",                  // the host may debug (decrypt) the guest
	20: "SINGLE_SOCKET",          // the guest may run on one socket only
	21: "CXL_ALLOW",              // CXL may be populated with devices or memory
	22: "MEM_AES_256_XTS",        // memory encryption must be AES-256-XTS
	23: "RAPL_DIS",               // RAPL must be disabled
	24: "CIPHERTEXT_HIDING_DRAM", // ciphertext hiding must be enabled for DRAM
	25: "PAGE_SWAP_DISABLE",      // the host may not swap the guest's pages
}

// SNPPlatformInfoBits names the bits of the SEV-SNP report's PLATFORM_INFO:
// what the platform that signed the report is actually running.
var SNPPlatformInfoBits = BitNames{
	0: "SMT_EN",                    // SMT is enabled
	1: "TSME_EN",                   // transparent SME is enabled
	2: "ECC_EN",                    // the platform uses ECC memory
	3: "RAPL_DIS",                  // RAPL is disabled
	4: "CIPHERTEXT_HIDING_DRAM_EN", // ciphertext hiding is enabled for DRAM
	5: "ALIAS_CHECK_COMPLETE",      // memory alias checking completed since the last reset (CVE-2024-21944)
	7: "TIO_EN",                    // SEV-TIO is enabled
}

// SNPGuestPolicy is the guest POLICY an SEV-SNP VM was launched with.
type SNPGuestPolicy struct {
	Raw U64 `json:"raw"`
	// ABIMajor and ABIMinor are the lowest firmware ABI the guest runs on.
	ABIMajor uint8    `json:"abi_major"`
	ABIMinor uint8    `json:"abi_minor"`
	Flags    []string `json:"flags"`
}

// NewSNPGuestPolicy decodes a POLICY value.
func NewSNPGuestPolicy(v uint64) *SNPGuestPolicy {
	return &SNPGuestPolicy{Raw: U64(v), ABIMajor: uint8(v >> 8), ABIMinor: uint8(v),
		Flags: SNPGuestPolicyBits.Names(v &^ 0xffff)}
}

// UnmarshalJSON also reads the bare JSON number claims carried before.
func (p *SNPGuestPolicy) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] != '{' {
		var v U64
		if err := v.UnmarshalJSON(t); err != nil {
			return fmt.Errorf("guest_policy: %w", err)
		}
		*p = *NewSNPGuestPolicy(uint64(v))
		return nil
	}
	type plain SNPGuestPolicy
	return json.Unmarshal(b, (*plain)(p))
}

// SNPTCB is an SEV-SNP TCB_VERSION, raw and split into the security patch
// level (SPL) of each firmware component, by the product's layout.
type SNPTCB struct {
	Raw U64 `json:"raw"`
	// FMC is the SPL of the FMC firmware (Turin and later; absent before).
	FMC        *uint8 `json:"fmc,omitempty"`
	Bootloader uint8  `json:"bootloader"`
	TEE        uint8  `json:"tee"`
	SNP        uint8  `json:"snp"`
	Microcode  uint8  `json:"microcode"`
	// Undecoded is set when only the raw value is known: claims written
	// before the components were reported carried a bare number.
	Undecoded bool `json:"undecoded,omitempty"`
}

// UnmarshalJSON also reads the bare JSON number claims carried before;
// the components are then unknown (Undecoded).
func (t *SNPTCB) UnmarshalJSON(b []byte) error {
	if tb := bytes.TrimSpace(b); len(tb) > 0 && tb[0] != '{' {
		var v U64
		if err := v.UnmarshalJSON(tb); err != nil {
			return fmt.Errorf("TCB version: %w", err)
		}
		*t = SNPTCB{Raw: v, Undecoded: true}
		return nil
	}
	type plain SNPTCB
	return json.Unmarshal(b, (*plain)(t))
}

func (t *SNPTCB) String() string {
	if t == nil {
		return "(none)"
	}
	s := fmt.Sprintf("bootloader %d, tee %d, snp %d, microcode %d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
	if t.FMC != nil {
		s = fmt.Sprintf("fmc %d, ", *t.FMC) + s
	}
	return "{" + s + "}"
}

// EventLog is what a verified TDX event log (the ACPI CCEL table's TCG2
// log) says about the runtime measurement registers.
type EventLog struct {
	// ReplayedRTMRs are the RTMRs (0-3) that equal the replay of the log's
	// events for them. Only their events are listed: the events of an RTMR
	// that does not replay (extended at run time without logging, or a log
	// that lies) prove nothing.
	ReplayedRTMRs []int `json:"replayed_rtmrs"`
	// UnreplayedRTMRs are the others, with no events listed.
	UnreplayedRTMRs []int      `json:"unreplayed_rtmrs,omitempty"`
	Events          []LogEvent `json:"events"`
}

// LogEvent is one measured event of a replayed RTMR.
type LogEvent struct {
	RTMR int `json:"rtmr"`
	// Type is the TCG event type (EV_IPL, EV_EFI_BOOT_SERVICES_APPLICATION,
	// …), and Description a short text from the event data (a file path,
	// a command line, a variable name). Neither is covered by the RTMR:
	// only Digest is.
	Type        string `json:"type"`
	Digest      Hex    `json:"digest"`
	Description string `json:"description,omitempty"`
	// DataDigest says SHA-384 of the event data is Digest, so Description
	// is exactly what was measured (true for grub's command lines, EFI
	// variables, separators; false for images, hashed in place).
	DataDigest bool `json:"data_is_digested,omitempty"`
}

// SNPFirmwareVersion is an SEV firmware version: the report's
// CURRENT_MAJOR, CURRENT_MINOR and CURRENT_BUILD (the firmware running
// now) or their COMMITTED_ counterparts (the lowest the firmware can be
// rolled back to). Versions order by major, then minor, then build
// (Compare); they are not strings to compare as text ("1.9" < "1.10").
type SNPFirmwareVersion struct {
	Major uint8 `json:"major"`
	Minor uint8 `json:"minor"`
	Build uint8 `json:"build"`
}

// String is major.minor.build, as AMD writes firmware versions.
func (v SNPFirmwareVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Build)
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than w.
func (v SNPFirmwareVersion) Compare(w SNPFirmwareVersion) int {
	for _, p := range [][2]uint8{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Build, w.Build}} {
		switch {
		case p[0] < p[1]:
			return -1
		case p[0] > p[1]:
			return 1
		}
	}
	return 0
}

// ParseSNPFirmwareVersion reads "major.minor.build" or "major.minor" (build
// 0), each part a decimal number from 0 to 255 without sign or padding.
func ParseSNPFirmwareVersion(s string) (SNPFirmwareVersion, error) {
	bad := func() (SNPFirmwareVersion, error) {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return SNPFirmwareVersion{}, fmt.Errorf("%q is not a firmware version major.minor.build (e.g. \"1.55.21\"; each part 0 to 255)", s)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 2 && len(parts) != 3 {
		return bad()
	}
	var n [3]uint8
	for i, p := range parts {
		// ParseUint takes "+1" and "0x1" neither, but "01" it would: a
		// padded part is refused so that one version has one spelling.
		x, err := strconv.ParseUint(p, 10, 8)
		if err != nil || strconv.FormatUint(x, 10) != p {
			return bad()
		}
		n[i] = uint8(x)
	}
	return SNPFirmwareVersion{Major: n[0], Minor: n[1], Build: n[2]}, nil
}

// UnmarshalJSON also reads the "major.minor.build" string claims carried
// before the version became an object.
func (v *SNPFirmwareVersion) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return err
		}
		x, err := ParseSNPFirmwareVersion(s)
		if err != nil {
			return err
		}
		*v = x
		return nil
	}
	type plain SNPFirmwareVersion
	return json.Unmarshal(b, (*plain)(v))
}
