package policy

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/ppml/ppml/attest"
)

// BitRule constrains a field of named bits (TDX TD_ATTRIBUTES and XFAM,
// the SEV-SNP guest policy and PLATFORM_INFO): bits that must be set, bits
// that must be clear, and optionally the exact values accepted. Bits are
// named as in the claims (SEPT_VE_DISABLE, MIGRATE_MA, SMT_EN, …) or as
// BIT<n>.
type BitRule struct {
	Require []string     `json:"require,omitempty" yaml:"require,omitempty"`
	Forbid  []string     `json:"forbid,omitempty" yaml:"forbid,omitempty"`
	Values  []attest.U64 `json:"values,omitempty" yaml:"values,omitempty"`
	// MinABI (guest_policy only) is the lowest accepted "major.minor" of
	// the firmware ABI the guest was launched to require.
	MinABI string `json:"min_abi,omitempty" yaml:"min_abi,omitempty"`
}

// TCBRule is the lowest accepted security patch level of each SEV-SNP
// firmware component; a component not named is not checked.
type TCBRule struct {
	FMC        *uint8 `json:"fmc,omitempty" yaml:"fmc,omitempty"`
	Bootloader *uint8 `json:"bootloader,omitempty" yaml:"bootloader,omitempty"`
	TEE        *uint8 `json:"tee,omitempty" yaml:"tee,omitempty"`
	SNP        *uint8 `json:"snp,omitempty" yaml:"snp,omitempty"`
	Microcode  *uint8 `json:"microcode,omitempty" yaml:"microcode,omitempty"`
}

// EventLogRule is a rule on the events of one RTMR, as a verified TDX event
// log reports them. It first requires that the RTMR equals the replay of
// the log. Each listed event must then be present: some event of the RTMR
// has one of its digests. Unless AllowOtherEvents is set, every event of
// the RTMR must have a digest listed here, so nothing else ran or was
// configured there. Events are matched by digest only: an event's type and
// data are not measured, and a guest could relabel them.
type EventLogRule struct {
	RTMR             *int          `json:"rtmr" yaml:"rtmr"`
	Events           []NamedDigest `json:"events,omitempty" yaml:"events,omitempty"`
	AllowOtherEvents bool          `json:"allow_other_events,omitempty" yaml:"allow_other_events,omitempty"`
}

// NamedDigest names the accepted SHA-384 digests of one event (a kernel, a
// command line, a boot loader), so that denials can say which is missing.
type NamedDigest struct {
	Name    string       `json:"name" yaml:"name"`
	Digests []attest.Hex `json:"digests" yaml:"digests"`
}

var (
	onlyTDX    = []attest.Platform{attest.PlatformTDX}
	onlySNP    = []attest.Platform{attest.PlatformSNP}
	sgxAndTDX  = []attest.Platform{attest.PlatformSGX, attest.PlatformTDX}
	zeroDigest = "an all-zero digest means no key signed an ID block at launch: pinning it accepts every guest launched without one"
)

// pinField is a field whose value must be one of a list.
type pinField struct {
	name      string // policy field
	what      string // the field's name in the evidence, for sentences
	rule      string
	platforms []attest.Platform
	size      int
	noZero    string // when set, an all-zero pin is refused with this reason
	pins      func(*PlatformRules) []attest.Hex
	claim     func(*attest.Claims) attest.Hex
}

func rtmrField(i int) pinField {
	return pinField{name: fmt.Sprintf("rtmr%d", i), what: fmt.Sprintf("RTMR%d", i), rule: RuleRTMR, platforms: onlyTDX, size: 48,
		pins: func(r *PlatformRules) []attest.Hex { return [][]attest.Hex{r.RTMR0, r.RTMR1, r.RTMR2, r.RTMR3}[i] },
		claim: func(c *attest.Claims) attest.Hex {
			if len(c.RTMR) > i {
				return c.RTMR[i]
			}
			return nil
		}}
}

var pinFields = []pinField{
	rtmrField(0), rtmrField(1), rtmrField(2), rtmrField(3),
	{"mrconfigid", "MRCONFIGID", RuleMRConfigID, onlyTDX, 48, "",
		func(r *PlatformRules) []attest.Hex { return r.MRConfigID }, func(c *attest.Claims) attest.Hex { return c.MRConfigID }},
	{"mrowner", "MROWNER", RuleMROwner, onlyTDX, 48, "",
		func(r *PlatformRules) []attest.Hex { return r.MROwner }, func(c *attest.Claims) attest.Hex { return c.MROwner }},
	{"mrownerconfig", "MROWNERCONFIG", RuleMROwnerConfig, onlyTDX, 48, "",
		func(r *PlatformRules) []attest.Hex { return r.MROwnerConfig }, func(c *attest.Claims) attest.Hex { return c.MROwnerConfig }},
	{"mrseam", "MRSEAM", RuleMRSeam, onlyTDX, 48, "",
		func(r *PlatformRules) []attest.Hex { return r.MRSeam }, func(c *attest.Claims) attest.Hex { return c.MRSeam }},
	{"mrsignerseam", "MRSIGNERSEAM", RuleMRSignerSeam, onlyTDX, 48, "",
		func(r *PlatformRules) []attest.Hex { return r.MRSignerSeam }, func(c *attest.Claims) attest.Hex { return c.MRSignerSeam }},
	{"host_data", "HOST_DATA", RuleHostData, onlySNP, 32, "",
		func(r *PlatformRules) []attest.Hex { return r.HostData }, func(c *attest.Claims) attest.Hex { return c.HostData }},
	{"id_key_digest", "ID_KEY_DIGEST", RuleIDKeyDigest, onlySNP, 48, zeroDigest,
		func(r *PlatformRules) []attest.Hex { return r.IDKeyDigest }, func(c *attest.Claims) attest.Hex { return c.IDKeyDigest }},
	{"author_key_digest", "AUTHOR_KEY_DIGEST", RuleAuthorKeyDigest, onlySNP, 48, zeroDigest,
		func(r *PlatformRules) []attest.Hex { return r.AuthorKeyDigest }, func(c *attest.Claims) attest.Hex { return c.AuthorKeyDigest }},
	{"family_id", "FAMILY_ID", RuleFamilyID, onlySNP, 16, "",
		func(r *PlatformRules) []attest.Hex { return r.FamilyID }, func(c *attest.Claims) attest.Hex { return c.FamilyID }},
	{"image_id", "IMAGE_ID", RuleImageID, onlySNP, 16, "",
		func(r *PlatformRules) []attest.Hex { return r.ImageID }, func(c *attest.Claims) attest.Hex { return c.ImageID }},
	{"chip_id", "CHIP_ID", RuleChipID, onlySNP, 64, "",
		func(r *PlatformRules) []attest.Hex { return r.ChipID }, func(c *attest.Claims) attest.Hex { return c.ChipID }},
}

// bitField is a field of named bits a BitRule applies to.
type bitField struct {
	name      string
	what      string
	rule      string
	platform  attest.Platform
	names     *attest.BitNames
	debugBit  int    // the bit that makes the TEE debuggable, -1 if none
	abiMask   uint64 // bits that are not flags (the guest policy's ABI version)
	minABI    bool   // min_abi applies
	get       func(*PlatformRules) *BitRule
	claimBits func(*attest.Claims) (uint64, bool)
}

var bitFields = []bitField{
	{name: "td_attributes", what: "TD_ATTRIBUTES", rule: RuleTDAttributes, platform: attest.PlatformTDX, names: &attest.TDAttributeBits, debugBit: 0,
		get: func(r *PlatformRules) *BitRule { return r.TDAttributes }, claimBits: flagsBits(func(c *attest.Claims) *attest.Flags { return c.TDAttributes })},
	{name: "xfam", what: "XFAM", rule: RuleXFAM, platform: attest.PlatformTDX, names: &attest.XFAMBits, debugBit: -1,
		get: func(r *PlatformRules) *BitRule { return r.XFAM }, claimBits: flagsBits(func(c *attest.Claims) *attest.Flags { return c.XFAM })},
	{name: "guest_policy", what: "guest POLICY", rule: RuleGuestPolicy, platform: attest.PlatformSNP, names: &attest.SNPGuestPolicyBits, debugBit: 19, abiMask: 0xffff, minABI: true,
		get: func(r *PlatformRules) *BitRule { return r.GuestPolicy }, claimBits: func(c *attest.Claims) (uint64, bool) {
			if c.GuestPolicy == nil {
				return 0, false
			}
			return uint64(c.GuestPolicy.Raw), true
		}},
	{name: "platform_info", what: "PLATFORM_INFO", rule: RulePlatformInfo, platform: attest.PlatformSNP, names: &attest.SNPPlatformInfoBits, debugBit: -1,
		get: func(r *PlatformRules) *BitRule { return r.PlatformInfo }, claimBits: flagsBits(func(c *attest.Claims) *attest.Flags { return c.PlatformInfo })},
}

func flagsBits(f func(*attest.Claims) *attest.Flags) func(*attest.Claims) (uint64, bool) {
	return func(c *attest.Claims) (uint64, bool) {
		if v := f(c); v != nil {
			return uint64(v.Raw), true
		}
		return 0, false
	}
}

// tcbField is an SEV-SNP TCB version a TCBRule applies to.
type tcbField struct {
	name, what string
	get        func(*PlatformRules) *TCBRule
	claim      func(*attest.Claims) *attest.SNPTCB
}

var tcbFields = []tcbField{
	{"min_reported_tcb", "REPORTED_TCB", func(r *PlatformRules) *TCBRule { return r.MinReportedTCB }, func(c *attest.Claims) *attest.SNPTCB { return c.ReportedTCB }},
	{"min_committed_tcb", "COMMITTED_TCB", func(r *PlatformRules) *TCBRule { return r.MinCommittedTCB }, func(c *attest.Claims) *attest.SNPTCB { return c.CommittedTCB }},
	{"min_launch_tcb", "LAUNCH_TCB", func(r *PlatformRules) *TCBRule { return r.MinLaunchTCB }, func(c *attest.Claims) *attest.SNPTCB { return c.LaunchTCB }},
}

// firmwareField is an SEV firmware version a minimum applies to.
type firmwareField struct {
	name, what string
	get        func(*PlatformRules) *string
	claim      func(*attest.Claims) *attest.SNPFirmwareVersion
}

var firmwareFields = []firmwareField{
	{"min_firmware_version", "the SEV firmware running is", func(r *PlatformRules) *string { return r.MinFirmwareVersion },
		func(c *attest.Claims) *attest.SNPFirmwareVersion { return c.FirmwareVersion }},
	{"min_committed_firmware_version", "the committed SEV firmware (the host can roll the firmware back to it) is", func(r *PlatformRules) *string { return r.MinCommittedFirmwareVersion },
		func(c *attest.Claims) *attest.SNPFirmwareVersion { return c.CommittedFirmwareVersion }},
}

// statusField is one part of the TCB status with its own accepted list.
type statusField struct {
	name, what string
	platforms  []attest.Platform
	get        func(*PlatformRules) []string
	claim      func(*attest.Claims) string
}

var statusFields = []statusField{
	{"platform_tcb_statuses", "platform TCB status", sgxAndTDX, func(r *PlatformRules) []string { return r.PlatformTCBStatuses }, func(c *attest.Claims) string { return c.PlatformTCBStatus }},
	{"qe_tcb_statuses", "quoting enclave TCB status", sgxAndTDX, func(r *PlatformRules) []string { return r.QETCBStatuses }, func(c *attest.Claims) string { return c.QETCBStatus }},
	{"tdx_module_tcb_statuses", "TDX module TCB status", onlyTDX, func(r *PlatformRules) []string { return r.TDXModuleTCBStatuses }, func(c *attest.Claims) string { return c.TDXModuleTCBStatus }},
}

func platformsList(ps []attest.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, string(p))
	}
	if len(s) == 1 {
		return "platform " + s[0]
	}
	return "platforms " + strings.Join(s, " and ")
}

// validateFields checks the rules beyond code identity, TCB status and
// advisories: each applies to its platforms only, values have their sizes,
// bit names exist, and nothing is asked for that could never hold.
func validateFields(name attest.Platform, r *PlatformRules) error {
	for _, f := range pinFields {
		pins := f.pins(r)
		if pins == nil {
			continue
		}
		if !slices.Contains(f.platforms, name) {
			return fmt.Errorf("%s applies to %s only", f.name, platformsList(f.platforms))
		}
		if len(pins) == 0 {
			return fmt.Errorf("%s: empty list: list the accepted values, or leave the field out to accept any", f.name)
		}
		for i, v := range pins {
			if len(v) != f.size {
				return fmt.Errorf("%s[%d]: %d bytes, want %d", f.name, i, len(v), f.size)
			}
			if f.noZero != "" && allZero(v) {
				return fmt.Errorf("%s[%d]: %s", f.name, i, f.noZero)
			}
		}
	}
	for _, f := range statusFields {
		list := f.get(r)
		if list == nil {
			continue
		}
		if !slices.Contains(f.platforms, name) {
			return fmt.Errorf("%s applies to %s only", f.name, platformsList(f.platforms))
		}
		if len(list) == 0 {
			return fmt.Errorf("%s: empty list: list the accepted statuses, or leave the field out", f.name)
		}
		if err := checkTCBStatuses(f.name, list); err != nil {
			return err
		}
	}
	for _, f := range bitFields {
		b := f.get(r)
		if b == nil {
			continue
		}
		if name != f.platform {
			return fmt.Errorf("%s applies to platform %s only", f.name, f.platform)
		}
		if err := b.validate(f, r.AllowDebug); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	for _, f := range tcbFields {
		t := f.get(r)
		if t == nil {
			continue
		}
		if name != attest.PlatformSNP {
			return fmt.Errorf("%s applies to platform snp only", f.name)
		}
		if t.FMC == nil && t.Bootloader == nil && t.TEE == nil && t.SNP == nil && t.Microcode == nil {
			return fmt.Errorf("%s: name at least one of fmc, bootloader, tee, snp, microcode", f.name)
		}
	}
	for _, f := range firmwareFields {
		v := f.get(r)
		if v == nil {
			continue
		}
		if name != attest.PlatformSNP {
			return fmt.Errorf("%s applies to platform snp only", f.name)
		}
		if _, err := attest.ParseSNPFirmwareVersion(*v); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if r.MinTEETCBSVN != nil {
		if name != attest.PlatformTDX {
			return errors.New("min_tee_tcb_svn applies to platform tdx only")
		}
		if len(r.MinTEETCBSVN) != 16 {
			return fmt.Errorf("min_tee_tcb_svn: %d bytes, want 16", len(r.MinTEETCBSVN))
		}
	}
	if r.MaxVMPL != nil {
		if name != attest.PlatformSNP {
			return errors.New("max_vmpl applies to platform snp only")
		}
		if *r.MaxVMPL > 3 {
			return fmt.Errorf("max_vmpl: %d, want 0 to 3", *r.MaxVMPL)
		}
	}
	if r.SigningKeys != nil {
		if name != attest.PlatformSNP {
			return errors.New("signing_keys applies to platform snp only")
		}
		if len(r.SigningKeys) == 0 {
			return errors.New("signing_keys: empty list: list vcek, vlek or both, or leave the field out")
		}
		for i, k := range r.SigningKeys {
			if k != "vcek" && k != "vlek" {
				return fmt.Errorf("signing_keys[%d]: %q, want vcek or vlek", i, k)
			}
		}
	}
	if r.EventLog != nil {
		if name != attest.PlatformTDX {
			return errors.New("event_log applies to platform tdx only")
		}
		if len(r.EventLog) == 0 {
			return errors.New("event_log: empty list: give rules, or leave the field out")
		}
		seen := map[int]bool{}
		for i, e := range r.EventLog {
			if err := e.validate(); err != nil {
				return fmt.Errorf("event_log[%d]: %w", i, err)
			}
			if seen[*e.RTMR] {
				return fmt.Errorf("event_log[%d]: a second rule for RTMR%d (give one rule per RTMR)", i, *e.RTMR)
			}
			seen[*e.RTMR] = true
		}
	}
	return nil
}

func (b *BitRule) validate(f bitField, allowDebug bool) error {
	if len(b.Require) == 0 && len(b.Forbid) == 0 && len(b.Values) == 0 && b.MinABI == "" {
		return errors.New("give require, forbid, values or min_abi, or leave the field out")
	}
	var req, forb uint64
	for _, l := range []struct {
		list  string
		names []string
		mask  *uint64
	}{{"require", b.Require, &req}, {"forbid", b.Forbid, &forb}} {
		list, mask := l.list, l.mask
		for i, n := range l.names {
			bit, ok := f.names.Bit(n)
			if !ok {
				return fmt.Errorf("%s[%d]: unknown bit %q (known: %s, or BIT<n>)", list, i, n, strings.Join(f.names.Known(), ", "))
			}
			if f.abiMask&(1<<bit) != 0 {
				return fmt.Errorf("%s[%d]: bits 0-15 are the ABI version, not flags: use min_abi", list, i)
			}
			*mask |= 1 << bit
		}
	}
	if both := req & forb; both != 0 {
		return fmt.Errorf("%s is both required and forbidden", strings.Join(f.names.Names(both), ", "))
	}
	if f.debugBit >= 0 && req&(1<<f.debugBit) != 0 {
		return fmt.Errorf("require: %s makes the TEE debuggable (its memory readable by the host): it can never be required", f.names.Name(f.debugBit))
	}
	if f.debugBit >= 0 && allowDebug && forb&(1<<f.debugBit) != 0 {
		return fmt.Errorf("forbid: %s contradicts allow_debug: true", f.names.Name(f.debugBit))
	}
	for i, v := range b.Values {
		if uint64(v)&req != req {
			return fmt.Errorf("values[%d]: %s lacks required %s", i, v, strings.Join(f.names.Names(req&^uint64(v)), ", "))
		}
		if uint64(v)&forb != 0 {
			return fmt.Errorf("values[%d]: %s has forbidden %s", i, v, strings.Join(f.names.Names(forb&uint64(v)), ", "))
		}
	}
	if b.MinABI != "" {
		if !f.minABI {
			return errors.New("min_abi applies to guest_policy only")
		}
		if _, _, err := parseABI(b.MinABI); err != nil {
			return fmt.Errorf("min_abi: %w", err)
		}
	}
	return nil
}

// parseABI reads "major.minor", each 0-255.
func parseABI(s string) (uint8, uint8, error) {
	maj, min, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseUint(maj, 10, 8)
	b, err2 := strconv.ParseUint(min, 10, 8)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not major.minor (e.g. \"1.51\", each 0 to 255)", s)
	}
	return uint8(a), uint8(b), nil
}

func (e *EventLogRule) validate() error {
	if e.RTMR == nil {
		return errors.New("rtmr: missing (0 to 3)")
	}
	if *e.RTMR < 0 || *e.RTMR > 3 {
		return fmt.Errorf("rtmr: %d, want 0 to 3", *e.RTMR)
	}
	if len(e.Events) == 0 && e.AllowOtherEvents {
		// Only requires that the log replays to the RTMR: allowed, it makes
		// the log's account of the RTMR a condition.
		return nil
	}
	names := map[string]bool{}
	for i, ev := range e.Events {
		n := strings.TrimSpace(ev.Name)
		if n == "" || n != ev.Name || len(n) > 64 || strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return fmt.Errorf("events[%d].name: %q: want 1 to 64 printable characters", i, truncate(ev.Name, 80))
		}
		if names[n] {
			return fmt.Errorf("events[%d].name: %q listed twice", i, n)
		}
		names[n] = true
		if len(ev.Digests) == 0 {
			return fmt.Errorf("events[%d] (%s).digests: list the accepted SHA-384 digests", i, n)
		}
		for j, d := range ev.Digests {
			if len(d) != 48 {
				return fmt.Errorf("events[%d] (%s).digests[%d]: %d bytes, want a 48-byte SHA-384 digest", i, n, j, len(d))
			}
		}
	}
	return nil
}

func allZero(b []byte) bool { return len(b) > 0 && bytes.Count(b, []byte{0}) == len(b) }
