package policy

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest"
)

func h48(s string) attest.Hex { d := sha512.Sum384([]byte(s)); return d[:] }

func hx(b []byte) string { return hex.EncodeToString(b) }

// fullTDX is a TDX policy that uses every TDX rule, with the claims it
// accepts below.
var fullTDX = `
version: 1
platforms:
  tdx:
    measurements: [%MRTD%]
    rtmr0: [` + hx(h48("rtmr0")) + `]
    rtmr1: [` + hx(h48("rtmr1")) + `, ` + hx(h48("rtmr1 next")) + `]
    rtmr2: [` + hx(h48("rtmr2")) + `]
    rtmr3: [` + hx(make([]byte, 48)) + `]
    mrconfigid: [` + hx(h48("config")) + `]
    mrowner: [` + hx(h48("owner")) + `]
    mrownerconfig: [` + hx(h48("owner config")) + `]
    mrseam: [` + hx(h48("seam")) + `]
    mrsignerseam: [` + hx(make([]byte, 48)) + `]
    td_attributes: {require: [SEPT_VE_DISABLE], forbid: [DEBUG, PERFMON, MIGRATABLE]}
    xfam: {values: [0x00000000000602e7]}
    min_tee_tcb_svn: 05010200000000000000000000000000
    tcb_statuses: [UpToDate, OutOfDate]
    platform_tcb_statuses: [UpToDate, OutOfDate]
    qe_tcb_statuses: [UpToDate]
    tdx_module_tcb_statuses: [UpToDate]
    event_log:
      - rtmr: 1
        events:
          - {name: shim, digests: [` + hx(h48("shim")) + `]}
          - {name: kernel, digests: [` + hx(h48("kernel 6.8")) + `, ` + hx(h48("kernel 6.9")) + `]}
      - rtmr: 2
        events:
          - {name: cmdline, digests: [` + hx(h48("console=hvc0")) + `]}
        allow_other_events: true
`

func tdxClaims() *attest.Claims {
	return &attest.Claims{Platform: attest.PlatformTDX, TEEType: "tdx-td", Measurement: mrtd[:], MRTD: mrtd[:],
		RTMR:       []attest.Hex{h48("rtmr0"), h48("rtmr1 next"), h48("rtmr2"), make([]byte, 48)},
		MRConfigID: h48("config"), MROwner: h48("owner"), MROwnerConfig: h48("owner config"),
		MRSeam: h48("seam"), MRSignerSeam: make([]byte, 48),
		TDAttributes: attest.TDAttributeBits.Flags(1 << 28), XFAM: attest.XFAMBits.Flags(0x602e7),
		TEETCBSVN: attest.Hex{6, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		TCBStatus: TCBUpToDate, PlatformTCBStatus: TCBUpToDate, QETCBStatus: TCBUpToDate, TDXModuleTCBStatus: TCBUpToDate,
		EventLog: &attest.EventLog{ReplayedRTMRs: []int{0, 1, 2, 3}, Events: []attest.LogEvent{
			{RTMR: 1, Type: "EV_EFI_BOOT_SERVICES_APPLICATION", Digest: h48("shim")},
			{RTMR: 1, Type: "EV_EFI_BOOT_SERVICES_APPLICATION", Digest: h48("kernel 6.9")},
			{RTMR: 2, Type: "EV_EVENT_TAG", Digest: h48("console=hvc0"), Description: "LOADED_IMAGE::LoadOptions"},
			{RTMR: 2, Type: "EV_EVENT_TAG", Digest: h48("initrd"), Description: "Linux initrd"},
		}}}
}

var fullSNP = `
version: 1
platforms:
  snp:
    measurements: [%SNP%]
    min_security_version: 2
    max_vmpl: 0
    host_data: [` + hx(make([]byte, 31)) + `01]
    id_key_digest: [` + hx(h48("id key")) + `]
    author_key_digest: [` + hx(h48("author key")) + `]
    family_id: [00112233445566778899aabbccddeeff]
    image_id: [ffeeddccbbaa99887766554433221100]
    chip_id: [` + hx(bytes.Repeat([]byte{7}, 64)) + `]
    signing_keys: [vcek]
    guest_policy: {require: [SINGLE_SOCKET], forbid: [DEBUG, MIGRATE_MA, SMT], min_abi: "1.51"}
    platform_info: {require: [TSME_EN], forbid: [SMT_EN]}
    min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}
    min_committed_tcb: {snp: 8}
    min_launch_tcb: {microcode: 115}
    min_firmware_version: "1.55.21"
    min_committed_firmware_version: "1.55"
`

func snpClaims() *attest.Claims {
	vmpl := 0
	tcb := func(bl, tee, snp, uc uint8) *attest.SNPTCB {
		return &attest.SNPTCB{Raw: attest.U64(uint64(bl) | uint64(tee)<<8 | uint64(snp)<<48 | uint64(uc)<<56), Bootloader: bl, TEE: tee, SNP: snp, Microcode: uc}
	}
	return &attest.Claims{Platform: attest.PlatformSNP, TEEType: "sev-snp-guest", Measurement: snpMeas[:], SecurityVersion: 2,
		VMPL: &vmpl, HostData: append(make([]byte, 31), 1), IDKeyDigest: h48("id key"), AuthorKeyDigest: h48("author key"),
		FamilyID: attest.Hex{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
		ImageID:  attest.Hex{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00},
		ChipID:   bytes.Repeat([]byte{7}, 64), SigningKey: "vcek", SNPProduct: "Milan",
		GuestPolicy:  attest.NewSNPGuestPolicy(1<<17 | 1<<20 | 1<<8 | 55),
		PlatformInfo: attest.SNPPlatformInfoBits.Flags(1 << 1),
		ReportedTCB:  tcb(3, 0, 8, 115), CommittedTCB: tcb(3, 0, 8, 115), LaunchTCB: tcb(3, 0, 8, 115), CurrentTCB: tcb(3, 0, 8, 115),
		FirmwareVersion:          &attest.SNPFirmwareVersion{Major: 1, Minor: 55, Build: 21},
		CommittedFirmwareVersion: &attest.SNPFirmwareVersion{Major: 1, Minor: 55, Build: 3}}
}

func fw(major, minor, build uint8) *attest.SNPFirmwareVersion {
	return &attest.SNPFirmwareVersion{Major: major, Minor: minor, Build: build}
}

func TestFieldRules(t *testing.T) {
	type tc struct {
		name   string
		edit   func(c *attest.Claims)
		rule   string
		field  string
		reason string // substring
	}
	run := func(t *testing.T, p *Policy, base func() *attest.Claims, cases []tc) {
		if d := Evaluate(p, base(), nil, now); !d.Allow {
			t.Fatalf("base claims: %+v", d)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cl := base()
				c.edit(cl)
				d := Evaluate(p, cl, nil, now)
				if d.Allow != (c.rule == "") || d.Rule != c.rule || d.Field != c.field || !strings.Contains(d.Reason, c.reason) {
					t.Fatalf("got %+v\nwant rule %q field %q reason ~%q", d, c.rule, c.field, c.reason)
				}
				t.Logf("%s %s: %s", d.Rule, d.Field, d.Reason)
			})
		}
	}
	tdx := "platforms.tdx."
	t.Run("tdx", func(t *testing.T) {
		run(t, mustParse(t, fullTDX), tdxClaims, []tc{
			{"other accepted rtmr1", func(c *attest.Claims) { c.RTMR[1] = h48("rtmr1") }, "", "", ""},
			{"rtmr0", func(c *attest.Claims) { c.RTMR[0] = h48("evil firmware config") }, RuleRTMR, tdx + "rtmr0", "rtmr0: RTMR0 is "},
			{"rtmr1", func(c *attest.Claims) { c.RTMR[1] = h48("evil kernel") }, RuleRTMR, tdx + "rtmr1", "the policy accepts " + short(h48("rtmr1"))},
			{"rtmr2", func(c *attest.Claims) { c.RTMR[2] = h48("x") }, RuleRTMR, tdx + "rtmr2", "RTMR2"},
			{"rtmr3 extended", func(c *attest.Claims) { c.RTMR[3] = h48("app") }, RuleRTMR, tdx + "rtmr3", "RTMR3"},
			{"no RTMRs", func(c *attest.Claims) { c.RTMR = nil }, RuleRTMR, tdx + "rtmr0", "carries no RTMR0"},
			{"mrconfigid", func(c *attest.Claims) { c.MRConfigID = make([]byte, 48) }, RuleMRConfigID, tdx + "mrconfigid", "MRCONFIGID is " + hx(make([]byte, 48))},
			{"mrowner", func(c *attest.Claims) { c.MROwner = h48("mallory") }, RuleMROwner, tdx + "mrowner", "MROWNER"},
			{"mrownerconfig", func(c *attest.Claims) { c.MROwnerConfig = nil }, RuleMROwnerConfig, tdx + "mrownerconfig", "carries no MROWNERCONFIG"},
			{"mrseam", func(c *attest.Claims) { c.MRSeam = h48("other module") }, RuleMRSeam, tdx + "mrseam", "MRSEAM"},
			{"mrsignerseam", func(c *attest.Claims) { c.MRSignerSeam = h48("not intel") }, RuleMRSignerSeam, tdx + "mrsignerseam", "MRSIGNERSEAM"},
			{"SEPT_VE_DISABLE off", func(c *attest.Claims) { c.TDAttributes = attest.TDAttributeBits.Flags(0) }, RuleTDAttributes, tdx + "td_attributes", "SEPT_VE_DISABLE is required and is not set"},
			{"PERFMON on", func(c *attest.Claims) { c.TDAttributes = attest.TDAttributeBits.Flags(1<<28 | 1<<63) }, RuleTDAttributes, tdx + "td_attributes", "PERFMON is set and the policy forbids it"},
			{"migratable", func(c *attest.Claims) { c.TDAttributes = attest.TDAttributeBits.Flags(1<<28 | 1<<29) }, RuleTDAttributes, tdx + "td_attributes", "MIGRATABLE"},
			{"no attributes", func(c *attest.Claims) { c.TDAttributes = nil }, RuleTDAttributes, tdx + "td_attributes", "carries no TD_ATTRIBUTES"},
			{"xfam", func(c *attest.Claims) { c.XFAM = attest.XFAMBits.Flags(0x618e7) }, RuleXFAM, tdx + "xfam", "XFAM is 0x00000000000618e7, the policy accepts 0x00000000000602e7"},
			{"tee_tcb_svn", func(c *attest.Claims) { c.TEETCBSVN[1] = 0 }, RuleTEETCBSVN, tdx + "min_tee_tcb_svn", "byte 1 is 0, the policy's minimum is 1"},
			{"converged OutOfDate accepted", func(c *attest.Claims) { c.TCBStatus, c.PlatformTCBStatus = TCBOutOfDate, TCBOutOfDate }, "", "", ""},
			{"module worse than platform", func(c *attest.Claims) { c.TCBStatus, c.TDXModuleTCBStatus = TCBOutOfDate, TCBOutOfDate }, RuleComponentTCB, tdx + "tdx_module_tcb_statuses", `the TDX module TCB status is "OutOfDate", the policy accepts UpToDate`},
			{"no module status", func(c *attest.Claims) { c.TDXModuleTCBStatus = "" }, RuleComponentTCB, tdx + "tdx_module_tcb_statuses", "carries no separate TDX module TCB status"},
			{"qe", func(c *attest.Claims) { c.QETCBStatus = TCBOutOfDate; c.TCBStatus = TCBOutOfDate }, RuleComponentTCB, tdx + "qe_tcb_statuses", "quoting enclave"},
			{"no event log", func(c *attest.Claims) { c.EventLog = nil }, RuleEventLog, tdx + "event_log[0]", "without an event log"},
			{"RTMR1 not replayed", func(c *attest.Claims) { c.EventLog.ReplayedRTMRs = []int{0, 2, 3} }, RuleEventLog, tdx + "event_log[0]", "RTMR1 is not the replay"},
			{"kernel missing", func(c *attest.Claims) { c.EventLog.Events[1].Digest = h48("kernel 7.0") }, RuleEventLog, tdx + "event_log[0].events[1]", `accepted for "kernel"`},
			{"extra boot app", func(c *attest.Claims) {
				c.EventLog.Events = append(c.EventLog.Events, attest.LogEvent{RTMR: 1, Type: "EV_EFI_BOOT_SERVICES_APPLICATION", Digest: h48("rootkit")})
			}, RuleEventLog, tdx + "event_log[0]", "RTMR1's event 3 (EV_EFI_BOOT_SERVICES_APPLICATION, digest"},
			{"relabelled event still counted", func(c *attest.Claims) {
				c.EventLog.Events = append(c.EventLog.Events, attest.LogEvent{RTMR: 1, Type: "EV_EFI_ACTION", Digest: h48("rootkit"), Description: "harmless"})
			}, RuleEventLog, tdx + "event_log[0]", `EV_EFI_ACTION "harmless"`},
			{"other RTMR2 events allowed", func(c *attest.Claims) {
				c.EventLog.Events = append(c.EventLog.Events, attest.LogEvent{RTMR: 2, Type: "EV_IPL", Digest: h48("anything")})
			}, "", "", ""},
			{"cmdline changed", func(c *attest.Claims) { c.EventLog.Events[2].Digest = h48("console=hvc0 init=/bin/sh") }, RuleEventLog, tdx + "event_log[1].events[0]", `"cmdline"`},
		})
	})
	snp := "platforms.snp."
	t.Run("snp", func(t *testing.T) {
		run(t, mustParse(t, fullSNP), snpClaims, []tc{
			{"higher SPLs", func(c *attest.Claims) { c.ReportedTCB.Microcode = 200; c.ReportedTCB.SNP = 22 }, "", "", ""},
			{"vmpl 1", func(c *attest.Claims) { v := 1; c.VMPL = &v }, RuleVMPL, snp + "max_vmpl", "requested at VMPL 1, the policy accepts VMPL 0 at most"},
			{"no vmpl", func(c *attest.Claims) { c.VMPL = nil }, RuleVMPL, snp + "max_vmpl", "carries no VMPL"},
			{"host_data", func(c *attest.Claims) { c.HostData = make([]byte, 32) }, RuleHostData, snp + "host_data", "HOST_DATA is " + hx(make([]byte, 32)) + ", the policy accepts " + hx(append(make([]byte, 31), 1))},
			{"id key", func(c *attest.Claims) { c.IDKeyDigest = h48("other id key") }, RuleIDKeyDigest, snp + "id_key_digest", "ID_KEY_DIGEST"},
			{"author key", func(c *attest.Claims) { c.AuthorKeyDigest = make([]byte, 48) }, RuleAuthorKeyDigest, snp + "author_key_digest", "AUTHOR_KEY_DIGEST"},
			{"family", func(c *attest.Claims) { c.FamilyID = make([]byte, 16) }, RuleFamilyID, snp + "family_id", "FAMILY_ID"},
			{"image", func(c *attest.Claims) { c.ImageID = make([]byte, 16) }, RuleImageID, snp + "image_id", "IMAGE_ID"},
			{"chip", func(c *attest.Claims) { c.ChipID = bytes.Repeat([]byte{8}, 64) }, RuleChipID, snp + "chip_id", "CHIP_ID"},
			{"vlek", func(c *attest.Claims) { c.SigningKey = "vlek" }, RuleSigningKey, snp + "signing_keys", "signed with vlek, the policy accepts vcek"},
			{"debug bit", func(c *attest.Claims) { c.GuestPolicy = attest.NewSNPGuestPolicy(1<<17 | 1<<20 | 1<<19 | 1<<8 | 55) }, RuleGuestPolicy, snp + "guest_policy", "DEBUG is set and the policy forbids it"},
			{"migrate_ma bit", func(c *attest.Claims) { c.GuestPolicy = attest.NewSNPGuestPolicy(1<<17 | 1<<20 | 1<<18 | 1<<8 | 55) }, RuleGuestPolicy, snp + "guest_policy", "MIGRATE_MA is set"},
			{"smt bit", func(c *attest.Claims) { c.GuestPolicy = attest.NewSNPGuestPolicy(1<<17 | 1<<20 | 1<<16 | 1<<8 | 55) }, RuleGuestPolicy, snp + "guest_policy", "SMT is set"},
			{"not single socket", func(c *attest.Claims) { c.GuestPolicy = attest.NewSNPGuestPolicy(1<<17 | 1<<8 | 55) }, RuleGuestPolicy, snp + "guest_policy", "SINGLE_SOCKET is required"},
			{"old abi", func(c *attest.Claims) { c.GuestPolicy = attest.NewSNPGuestPolicy(1<<17 | 1<<20 | 1<<8 | 50) }, RuleGuestPolicy, snp + "guest_policy.min_abi", "requiring ABI 1.50, the policy's minimum is 1.51"},
			{"SMT on the host", func(c *attest.Claims) { c.PlatformInfo = attest.SNPPlatformInfoBits.Flags(3) }, RulePlatformInfo, snp + "platform_info", "SMT_EN is set"},
			{"no TSME", func(c *attest.Claims) { c.PlatformInfo = attest.SNPPlatformInfoBits.Flags(0) }, RulePlatformInfo, snp + "platform_info", "TSME_EN is required"},
			{"old microcode", func(c *attest.Claims) { c.ReportedTCB.Microcode = 114 }, RuleSNPTCB, snp + "min_reported_tcb.microcode", "REPORTED_TCB microcode SPL is 114, the policy's minimum is 115"},
			{"old bootloader", func(c *attest.Claims) { c.ReportedTCB.Bootloader = 2 }, RuleSNPTCB, snp + "min_reported_tcb.bootloader", "bootloader SPL is 2"},
			{"old snp fw", func(c *attest.Claims) { c.ReportedTCB.SNP = 7 }, RuleSNPTCB, snp + "min_reported_tcb.snp", "snp SPL is 7"},
			{"committed rolled back", func(c *attest.Claims) { c.CommittedTCB.SNP = 7 }, RuleSNPTCB, snp + "min_committed_tcb.snp", "COMMITTED_TCB snp SPL is 7"},
			{"launched on old microcode", func(c *attest.Claims) { c.LaunchTCB.Microcode = 1 }, RuleSNPTCB, snp + "min_launch_tcb.microcode", "LAUNCH_TCB"},
			{"undecoded tcb", func(c *attest.Claims) { c.ReportedTCB = &attest.SNPTCB{Raw: 5, Undecoded: true} }, RuleSNPTCB, snp + "min_reported_tcb", "no decoded REPORTED_TCB"},
			{"guest svn", func(c *attest.Claims) { c.SecurityVersion = 1 }, RuleSecurityVer, snp + "min_security_version", "security version 1"},
			// Versions order by major, minor, build as numbers: 1.9 is
			// older than 1.55 although "1.9" sorts after "1.55" as text.
			{"newer build", func(c *attest.Claims) { c.FirmwareVersion = fw(1, 55, 22) }, "", "", ""},
			{"newer minor, lower build", func(c *attest.Claims) { c.FirmwareVersion = fw(1, 57, 0) }, "", "", ""},
			{"newer major", func(c *attest.Claims) { c.FirmwareVersion, c.CommittedFirmwareVersion = fw(2, 0, 0), fw(2, 0, 0) }, "", "", ""},
			{"older build", func(c *attest.Claims) { c.FirmwareVersion = fw(1, 55, 20) }, RuleSNPFirmware, snp + "min_firmware_version", "the SEV firmware running is 1.55.20, the policy's minimum is 1.55.21"},
			{"older minor, higher build", func(c *attest.Claims) { c.FirmwareVersion = fw(1, 54, 99) }, RuleSNPFirmware, snp + "min_firmware_version", "is 1.54.99, the policy's minimum is 1.55.21"},
			{"1.9 is older than 1.55", func(c *attest.Claims) { c.FirmwareVersion = fw(1, 9, 255) }, RuleSNPFirmware, snp + "min_firmware_version", "is 1.9.255"},
			{"older major", func(c *attest.Claims) { c.FirmwareVersion = fw(0, 255, 255) }, RuleSNPFirmware, snp + "min_firmware_version", "is 0.255.255"},
			{"no firmware version", func(c *attest.Claims) { c.FirmwareVersion = nil }, RuleSNPFirmware, snp + "min_firmware_version", "carries no firmware version"},
			{"committed at the minimum", func(c *attest.Claims) { c.CommittedFirmwareVersion = fw(1, 55, 0) }, "", "", ""},
			{"committed below: the host can roll back", func(c *attest.Claims) { c.CommittedFirmwareVersion = fw(1, 54, 7) }, RuleSNPFirmware, snp + "min_committed_firmware_version", "the committed SEV firmware (the host can roll the firmware back to it) is 1.54.7, the policy's minimum is 1.55.0"},
			{"no committed version", func(c *attest.Claims) { c.CommittedFirmwareVersion = nil }, RuleSNPFirmware, snp + "min_committed_firmware_version", "carries no firmware version"},
		})
	})
	t.Run("turin fmc", func(t *testing.T) {
		p := mustParse(t, "version: 1\nplatforms:\n  snp:\n    measurements: [%SNP%]\n    min_reported_tcb: {fmc: 2, microcode: 115}\n")
		c := snpClaims()
		if d := Evaluate(p, c, nil, now); d.Rule != RuleSNPTCB || d.Field != snp+"min_reported_tcb.fmc" || !strings.Contains(d.Reason, "no fmc SPL") {
			t.Fatalf("Milan claims, fmc rule: %+v", d)
		}
		two, one := uint8(2), uint8(1)
		c.ReportedTCB.FMC = &two
		if d := Evaluate(p, c, nil, now); !d.Allow {
			t.Fatalf("fmc 2: %+v", d)
		}
		c.ReportedTCB.FMC = &one
		if d := Evaluate(p, c, nil, now); d.Rule != RuleSNPTCB || !strings.Contains(d.Reason, "fmc SPL is 1, the policy's minimum is 2") {
			t.Fatalf("fmc 1: %+v", d)
		}
	})
}

// TestFieldRulesAreDenyByDefault: a rule that names a field denies claims
// without it, whatever the platform's other rules say.
func TestFieldRulesAreDenyByDefault(t *testing.T) {
	p := mustParse(t, fullTDX)
	bare := &attest.Claims{Platform: attest.PlatformTDX, Measurement: mrtd[:], MRTD: mrtd[:], TCBStatus: TCBUpToDate}
	if d := Evaluate(p, bare, nil, now); d.Allow || d.Rule != RuleRTMR {
		t.Fatalf("%+v", d)
	}
	p = mustParse(t, fullSNP)
	if d := Evaluate(p, &attest.Claims{Platform: attest.PlatformSNP, Measurement: snpMeas[:], SecurityVersion: 5}, nil, now); d.Allow || d.Rule != RuleVMPL {
		t.Fatalf("%+v", d)
	}
}

func TestFieldRulesRejectedAtLoad(t *testing.T) {
	tdx := "version: 1\nplatforms:\n  tdx:\n    measurements: [%MRTD%]\n"
	snp := "version: 1\nplatforms:\n  snp:\n    measurements: [%SNP%]\n"
	for name, c := range map[string]struct{ doc, want string }{
		"rtmr on snp":            {snp + "    rtmr1: [" + hx(h48("a")) + "]\n", "platforms.snp: rtmr1 applies to platform tdx only"},
		"host_data on tdx":       {tdx + "    host_data: [" + hx(make([]byte, 32)) + "]\n", "host_data applies to platform snp only"},
		"short rtmr":             {tdx + "    rtmr2: [abcd]\n", "rtmr2[0]: 2 bytes, want 48"},
		"empty list":             {tdx + "    mrconfigid: []\n", "mrconfigid: empty list"},
		"zero id key":            {snp + "    id_key_digest: [" + hx(make([]byte, 48)) + "]\n", "id_key_digest[0]: an all-zero digest means no key signed an ID block"},
		"unknown field":          {tdx + "    rtmr4: [" + hx(h48("a")) + "]\n", "unknown field rtmr4"},
		"unknown bit":            {tdx + "    td_attributes: {require: [SEPT_VE]}\n", `td_attributes: require[0]: unknown bit "SEPT_VE" (known: DEBUG,`},
		"require debug":          {tdx + "    td_attributes: {require: [DEBUG]}\n", "DEBUG makes the TEE debuggable"},
		"snp require debug":      {snp + "    guest_policy: {require: [DEBUG]}\n", "guest_policy: require: DEBUG makes the TEE debuggable"},
		"both":                   {snp + "    guest_policy: {require: [SMT], forbid: [SMT]}\n", "SMT is both required and forbidden"},
		"abi bits":               {snp + "    guest_policy: {forbid: [BIT3]}\n", "bits 0-15 are the ABI version"},
		"bad abi":                {snp + "    guest_policy: {min_abi: \"1\"}\n", `min_abi: "1" is not major.minor`},
		"min_abi on xfam":        {tdx + "    xfam: {min_abi: \"1.0\"}\n", "min_abi applies to guest_policy only"},
		"empty bit rule":         {tdx + "    xfam: {}\n", "xfam: give require, forbid, values or min_abi"},
		"value lacks required":   {tdx + "    td_attributes: {require: [SEPT_VE_DISABLE], values: [0]}\n", "values[0]: 0x0000000000000000 lacks required SEPT_VE_DISABLE"},
		"bad value":              {tdx + "    td_attributes: {values: [0x1g]}\n", "is not a 64-bit unsigned integer"},
		"vmpl 4":                 {snp + "    max_vmpl: 4\n", "max_vmpl: 4, want 0 to 3"},
		"signing key":            {snp + "    signing_keys: [ask]\n", `signing_keys[0]: "ask", want vcek or vlek`},
		"empty tcb rule":         {snp + "    min_reported_tcb: {}\n", "min_reported_tcb: name at least one"},
		"tcb component typo":     {snp + "    min_reported_tcb: {ucode: 1}\n", "unknown field ucode"},
		"tcb spl too big":        {snp + "    min_reported_tcb: {snp: 256}\n", "`256` is out of range"},
		"tee_tcb_svn size":       {tdx + "    min_tee_tcb_svn: 0501\n", "min_tee_tcb_svn: 2 bytes, want 16"},
		"module status on sgx":   {"version: 1\nplatforms:\n  sgx:\n    signers: [%MRSIGNER%]\n    tdx_module_tcb_statuses: [UpToDate]\n", "tdx_module_tcb_statuses applies to platform tdx only"},
		"module not supported":   {tdx + "    tdx_module_tcb_statuses: [TCB_LEVEL_NOT_SUPPORTED]\n", "tdx_module_tcb_statuses: TCB_LEVEL_NOT_SUPPORTED can never be accepted"},
		"platform revoked":       {tdx + "    platform_tcb_statuses: [Revoked]\n", "platform_tcb_statuses: Revoked can never be accepted"},
		"event log without rtmr": {tdx + "    event_log: [{events: [{name: k, digests: [" + hx(h48("k")) + "]}]}]\n", "event_log[0]: rtmr: missing"},
		"event log rtmr 4":       {tdx + "    event_log: [{rtmr: 4}]\n", "rtmr: 4, want 0 to 3"},
		"two rules, one rtmr":    {tdx + "    event_log: [{rtmr: 1, allow_other_events: true}, {rtmr: 1, allow_other_events: true}]\n", "a second rule for RTMR1"},
		"event without digests":  {tdx + "    event_log: [{rtmr: 1, events: [{name: kernel}]}]\n", "events[0] (kernel).digests: list the accepted"},
		"event sha256":           {tdx + "    event_log: [{rtmr: 1, events: [{name: kernel, digests: [" + hx(make([]byte, 32)) + "]}]}]\n", "want a 48-byte SHA-384 digest"},
		"event without name":     {tdx + "    event_log: [{rtmr: 1, events: [{digests: [" + hx(h48("k")) + "]}]}]\n", `events[0].name: ""`},
		"event log on snp":       {snp + "    event_log: [{rtmr: 1, allow_other_events: true}]\n", "event_log applies to platform tdx only"},
		"firmware on tdx":        {tdx + "    min_firmware_version: \"1.55.21\"\n", "platforms.tdx: min_firmware_version applies to platform snp only"},
		"firmware letters":       {snp + "    min_firmware_version: \"1.55.x\"\n", `platforms.snp: min_firmware_version: "1.55.x" is not a firmware version major.minor.build`},
		"firmware part > 255":    {snp + "    min_committed_firmware_version: \"1.256.0\"\n", `min_committed_firmware_version: "1.256.0" is not a firmware version`},
		"firmware one part":      {snp + "    min_firmware_version: 1\n", `min_firmware_version: "1" is not a firmware version`},
		"firmware four parts":    {snp + "    min_firmware_version: 1.55.21.0\n", `min_firmware_version: "1.55.21.0" is not`},
		"firmware padded":        {snp + "    min_firmware_version: \"1.055.0\"\n", `min_firmware_version: "1.055.0" is not`},
		"firmware empty":         {snp + "    min_committed_firmware_version: \"\"\n", `min_committed_firmware_version: "" is not`},
		"firmware signed":        {snp + "    min_firmware_version: \"+1.55.0\"\n", `min_firmware_version: "+1.55.0" is not`},
		"firmware spaces":        {snp + "    min_firmware_version: \"1.55.21 \"\n", `min_firmware_version: "1.55.21 " is not`},
		"firmware list":          {snp + "    min_firmware_version: [1, 55, 21]\n", "line 5: is a list where a string is expected"},
	} {
		_, err := Parse([]byte(expand(c.doc)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %q", name, err, c.want)
		}
	}
}

// TestFirmwareVersionUnquoted: YAML reads an unquoted 1.55 as a number
// and 1.55.21 as a string; both are the version as written ("1.50" keeps
// its minor 50), in YAML and in JSON documents.
func TestFirmwareVersionUnquoted(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"version: 1\nplatforms:\n  snp:\n    measurements: [%SNP%]\n    min_firmware_version: 1.55.21\n    min_committed_firmware_version: 1.50\n", "1.50"},
		{`{"version": 1, "platforms": {"snp": {"measurements": ["%SNP%"], "min_firmware_version": "1.55.21", "min_committed_firmware_version": 1.50}}}`, "1.50"},
	} {
		p := mustParse(t, c.doc)
		r := p.Platforms[attest.PlatformSNP]
		if *r.MinFirmwareVersion != "1.55.21" || *r.MinCommittedFirmwareVersion != c.want {
			t.Fatalf("%q %q", *r.MinFirmwareVersion, *r.MinCommittedFirmwareVersion)
		}
		cl := snpClaims()
		cl.CommittedFirmwareVersion = fw(1, 49, 9)
		if d := Evaluate(p, cl, nil, now); d.Rule != RuleSNPFirmware || !strings.Contains(d.Reason, "is 1.49.9, the policy's minimum is 1.50.0") {
			t.Fatalf("%+v", d)
		}
		cl.CommittedFirmwareVersion = fw(1, 50, 0)
		if d := Evaluate(p, cl, nil, now); !d.Allow {
			t.Fatalf("%+v", d)
		}
	}
}

// TestFieldRulesRoundTrip: the full policies re-encode (ppml policy get)
// to documents that parse to the same decisions.
func TestFieldRulesRoundTrip(t *testing.T) {
	for _, doc := range []string{fullTDX, fullSNP} {
		p := mustParse(t, doc)
		for _, enc := range []func() ([]byte, error){p.YAML, p.JSON} {
			b, err := enc()
			if err != nil {
				t.Fatal(err)
			}
			q, err := Parse(b)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			for _, c := range []*attest.Claims{tdxClaims(), snpClaims()} {
				if d1, d2 := Evaluate(p, c, nil, now), Evaluate(q, c, nil, now); d1 != d2 {
					t.Fatalf("%+v vs %+v\n%s", d1, d2, b)
				}
			}
		}
	}
}
