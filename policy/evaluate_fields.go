package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ppml/ppml/attest"
)

// Rule names of the rules on TDX and SEV-SNP fields. A denial by one of
// them also names the policy field (Decision.Field), and its sentence says
// what the evidence holds and what the policy accepts.
const (
	RuleRTMR            = "rtmr"                 // rtmr0..rtmr3: RTMR not in the list
	RuleMRConfigID      = "mrconfigid"           // MRCONFIGID not in the list
	RuleMROwner         = "mrowner"              // MROWNER not in the list
	RuleMROwnerConfig   = "mrownerconfig"        // MROWNERCONFIG not in the list
	RuleMRSeam          = "mrseam"               // TDX module measurement not in the list
	RuleMRSignerSeam    = "mrsignerseam"         // TDX module signer not in the list
	RuleTDAttributes    = "td_attributes"        // TD_ATTRIBUTES bit rule
	RuleXFAM            = "xfam"                 // XFAM bit rule
	RuleTEETCBSVN       = "tee_tcb_svn"          // a TEE_TCB_SVN byte below min_tee_tcb_svn
	RuleComponentTCB    = "component_tcb"        // platform, QE or TDX module TCB status not accepted
	RuleEventLog        = "event_log"            // an event log rule
	RuleVMPL            = "snp_vmpl"             // VMPL above max_vmpl
	RuleHostData        = "snp_host_data"        // HOST_DATA not in the list
	RuleIDKeyDigest     = "snp_id_key"           // ID_KEY_DIGEST not in the list
	RuleAuthorKeyDigest = "snp_author_key"       // AUTHOR_KEY_DIGEST not in the list
	RuleFamilyID        = "snp_family_id"        // FAMILY_ID not in the list
	RuleImageID         = "snp_image_id"         // IMAGE_ID not in the list
	RuleChipID          = "snp_chip_id"          // CHIP_ID not in the list
	RuleSigningKey      = "snp_signing_key"      // VCEK/VLEK not in signing_keys
	RuleGuestPolicy     = "snp_guest_policy"     // guest policy bit rule or min_abi
	RulePlatformInfo    = "snp_platform_info"    // PLATFORM_INFO bit rule
	RuleSNPTCB          = "snp_tcb"              // a component's SPL below min_*_tcb
	RuleSNPFirmware     = "snp_firmware_version" // the current or committed firmware version below its minimum
)

// denyField is a denial that names the policy field.
func denyField(rule, field, format string, args ...any) Decision {
	d := deny(rule, format, args...)
	d.Field = field
	return d
}

// evaluateFields applies the TDX and SEV-SNP field rules of r to c, in the
// order of docs/policy.md, and returns the first denial (Allow with no
// rule when all hold).
func evaluateFields(r *PlatformRules, c *attest.Claims) Decision {
	prefix := "platforms." + string(c.Platform) + "."
	if c.Platform == attest.PlatformSNP {
		if d := evaluateSNPKey(r, c, prefix); !d.Allow {
			return d
		}
	}
	for _, f := range pinFields {
		pins := f.pins(r)
		if pins == nil || !slices.Contains(f.platforms, c.Platform) {
			continue
		}
		field := prefix + f.name
		got := f.claim(c)
		if len(got) == 0 {
			return denyField(f.rule, field, "%s: the evidence carries no %s", f.name, f.what)
		}
		if !containsHex(pins, got) {
			return denyField(f.rule, field, "%s: %s is %s, the policy accepts %s", f.name, f.what, got, hexListVs(pins, got))
		}
	}
	for _, f := range bitFields {
		b := f.get(r)
		if b == nil || c.Platform != f.platform {
			continue
		}
		if d := b.evaluate(f, c, prefix+f.name); !d.Allow {
			return d
		}
	}
	if r.MinTEETCBSVN != nil && c.Platform == attest.PlatformTDX {
		field := prefix + "min_tee_tcb_svn"
		if len(c.TEETCBSVN) != len(r.MinTEETCBSVN) {
			return denyField(RuleTEETCBSVN, field, "min_tee_tcb_svn: the evidence carries no TEE_TCB_SVN")
		}
		for i, min := range r.MinTEETCBSVN {
			if c.TEETCBSVN[i] < min {
				return denyField(RuleTEETCBSVN, field, "min_tee_tcb_svn: TEE_TCB_SVN byte %d is %d, the policy's minimum is %d (TEE_TCB_SVN %s, minimum %s)",
					i, c.TEETCBSVN[i], min, c.TEETCBSVN, r.MinTEETCBSVN)
			}
		}
	}
	for _, f := range statusFields {
		list := f.get(r)
		if list == nil || !slices.Contains(f.platforms, c.Platform) {
			continue
		}
		got := f.claim(c)
		if got == "" {
			return denyField(RuleComponentTCB, prefix+f.name, "%s: the evidence carries no separate %s (the TCB info does not judge it alone)", f.name, f.what)
		}
		if !slices.Contains(list, got) {
			return denyField(RuleComponentTCB, prefix+f.name, "%s: the %s is %q, the policy accepts %s", f.name, f.what, got, strings.Join(list, ", "))
		}
	}
	if c.Platform == attest.PlatformTDX {
		for i := range r.EventLog {
			if d := r.EventLog[i].evaluate(c, fmt.Sprintf("%sevent_log[%d]", prefix, i)); !d.Allow {
				return d
			}
		}
	}
	if c.Platform == attest.PlatformSNP {
		if d := evaluateSNPTCB(r, c, prefix); !d.Allow {
			return d
		}
		if d := evaluateSNPFirmware(r, c, prefix); !d.Allow {
			return d
		}
	}
	return Decision{Allow: true}
}

// evaluateSNPFirmware checks the minimum current and committed firmware
// versions, ordered by major, minor, build.
func evaluateSNPFirmware(r *PlatformRules, c *attest.Claims, prefix string) Decision {
	for _, f := range firmwareFields {
		s := f.get(r)
		if s == nil {
			continue
		}
		min, err := attest.ParseSNPFirmwareVersion(*s)
		if err != nil { // Validate refused it already; never accept on a bad rule
			return deny(RuleInvalidPolicy, "%s: %v", f.name, err)
		}
		got := f.claim(c)
		if got == nil {
			return denyField(RuleSNPFirmware, prefix+f.name, "%s: the evidence carries no firmware version", f.name)
		}
		if got.Compare(min) < 0 {
			return denyField(RuleSNPFirmware, prefix+f.name, "%s: %s %s, the policy's minimum is %s", f.name, f.what, got, min)
		}
	}
	return Decision{Allow: true}
}

// evaluateSNPKey checks who asked for the report and what signed it.
func evaluateSNPKey(r *PlatformRules, c *attest.Claims, prefix string) Decision {
	if r.MaxVMPL != nil {
		if c.VMPL == nil {
			return denyField(RuleVMPL, prefix+"max_vmpl", "max_vmpl: the evidence carries no VMPL")
		}
		if *c.VMPL > int(*r.MaxVMPL) {
			return denyField(RuleVMPL, prefix+"max_vmpl", "max_vmpl: the report was requested at VMPL %d, the policy accepts VMPL %d at most", *c.VMPL, *r.MaxVMPL)
		}
	}
	if r.SigningKeys != nil && !slices.Contains(r.SigningKeys, c.SigningKey) {
		got := c.SigningKey
		if got == "" {
			got = "(none)"
		}
		return denyField(RuleSigningKey, prefix+"signing_keys", "signing_keys: the report is signed with %s, the policy accepts %s", got, strings.Join(r.SigningKeys, ", "))
	}
	return Decision{Allow: true}
}

// evaluateSNPTCB checks the minimum security patch levels.
func evaluateSNPTCB(r *PlatformRules, c *attest.Claims, prefix string) Decision {
	for _, f := range tcbFields {
		t := f.get(r)
		if t == nil {
			continue
		}
		field := prefix + f.name
		got := f.claim(c)
		if got == nil || got.Undecoded {
			return denyField(RuleSNPTCB, field, "%s: the evidence carries no decoded %s", f.name, f.what)
		}
		for _, comp := range []struct {
			name     string
			min, got *uint8
		}{{"fmc", t.FMC, got.FMC}, {"bootloader", t.Bootloader, &got.Bootloader}, {"tee", t.TEE, &got.TEE}, {"snp", t.SNP, &got.SNP}, {"microcode", t.Microcode, &got.Microcode}} {
			if comp.min == nil {
				continue
			}
			if comp.got == nil {
				return denyField(RuleSNPTCB, field+"."+comp.name, "%s.%s: %s has no %s SPL (only Turin and later report one)", f.name, comp.name, f.what, comp.name)
			}
			if *comp.got < *comp.min {
				return denyField(RuleSNPTCB, field+"."+comp.name, "%s.%s: %s %s SPL is %d, the policy's minimum is %d (%s %s)",
					f.name, comp.name, f.what, comp.name, *comp.got, *comp.min, f.what, got)
			}
		}
	}
	return Decision{Allow: true}
}

func (b *BitRule) evaluate(f bitField, c *attest.Claims, field string) Decision {
	v, ok := f.claimBits(c)
	if !ok {
		return denyField(f.rule, field, "%s: the evidence carries no %s", f.name, f.what)
	}
	for _, n := range b.Require {
		bit, _ := f.names.Bit(n)
		if v&(1<<bit) == 0 {
			return denyField(f.rule, field, "%s: %s is required and is not set (%s is %s)", f.name, n, f.what, attest.U64(v))
		}
	}
	for _, n := range b.Forbid {
		bit, _ := f.names.Bit(n)
		if v&(1<<bit) != 0 {
			return denyField(f.rule, field, "%s: %s is set and the policy forbids it (%s is %s)", f.name, n, f.what, attest.U64(v))
		}
	}
	if len(b.Values) > 0 && !slices.Contains(b.Values, attest.U64(v)) {
		var want []string
		for _, x := range b.Values {
			want = append(want, x.String())
		}
		return denyField(f.rule, field, "%s: %s is %s, the policy accepts %s", f.name, f.what, attest.U64(v), strings.Join(want, ", "))
	}
	if b.MinABI != "" {
		maj, min, _ := parseABI(b.MinABI)
		gMaj, gMin := uint8(v>>8), uint8(v)
		if gMaj < maj || gMaj == maj && gMin < min {
			return denyField(f.rule, field+".min_abi", "%s.min_abi: the guest was launched requiring ABI %d.%d, the policy's minimum is %s", f.name, gMaj, gMin, b.MinABI)
		}
	}
	return Decision{Allow: true}
}

func (e *EventLogRule) evaluate(c *attest.Claims, field string) Decision {
	rtmr := *e.RTMR
	l := c.EventLog
	if l == nil {
		return denyField(RuleEventLog, field, "event_log: the evidence came without an event log, and the policy has rules on RTMR%d's events", rtmr)
	}
	if !slices.Contains(l.ReplayedRTMRs, rtmr) {
		return denyField(RuleEventLog, field, "event_log: RTMR%d is not the replay of the event log (it was extended with something the log does not record), so the log proves nothing about it", rtmr)
	}
	var events []attest.LogEvent
	for _, ev := range l.Events {
		if ev.RTMR == rtmr {
			events = append(events, ev)
		}
	}
	for j, want := range e.Events {
		if !slices.ContainsFunc(events, func(ev attest.LogEvent) bool { return containsHex(want.Digests, ev.Digest) }) {
			return denyField(RuleEventLog, fmt.Sprintf("%s.events[%d]", field, j),
				"event_log: no event of RTMR%d has one of the %d digests accepted for %q (%s)", rtmr, len(want.Digests), want.Name, hexList(want.Digests))
		}
	}
	if !e.AllowOtherEvents {
		for k, ev := range events {
			listed := slices.ContainsFunc(e.Events, func(n NamedDigest) bool { return containsHex(n.Digests, ev.Digest) })
			if !listed {
				what := ev.Type
				if ev.Description != "" {
					what += fmt.Sprintf(" %q", ev.Description)
				}
				return denyField(RuleEventLog, field, "event_log: RTMR%d's event %d (%s, digest %s) is not one the policy lists, and allow_other_events is not set", rtmr, k+1, what, short(ev.Digest))
			}
		}
	}
	return Decision{Allow: true}
}

// hexListVs is hexList, but a value whose shortened form is got's is
// shown in full, so that the sentence shows where they differ.
func hexListVs(list []attest.Hex, got []byte) string {
	var s []string
	for i, h := range list {
		if i == 3 {
			s = append(s, fmt.Sprintf("and %d more", len(list)-3))
			break
		}
		if short(h) == short(got) {
			s = append(s, h.String())
		} else {
			s = append(s, short(h))
		}
	}
	return strings.Join(s, ", ")
}

// hexList shows up to three accepted values, shortened.
func hexList(list []attest.Hex) string {
	var s []string
	for i, h := range list {
		if i == 3 {
			s = append(s, fmt.Sprintf("and %d more", len(list)-3))
			break
		}
		s = append(s, short(h))
	}
	return strings.Join(s, ", ")
}
