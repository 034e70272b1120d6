package snp

// Synthesized SEV-SNP reports for every SNP policy rule: reports with
// chosen field values, signed by a VCEK (or VLEK) under a test-only ARK,
// verified, then evaluated. For each rule there is a report that passes and
// one that fails on that field alone.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/policy"
)

// reportFields are the report fields a policy can name.
type reportFields struct {
	guestSVN                                         uint32
	policy                                           uint64
	familyID, imageID                                [16]byte
	vmpl                                             uint32
	currentTCB, reportedTCB, committedTCB, launchTCB uint64
	platformInfo                                     uint64
	current, committed                               attest.SNPFirmwareVersion
	signingKey                                       SigningKey
	measurement                                      [48]byte
	hostData                                         [32]byte
	idKeyDigest, authorKeyDigest                     [48]byte
	chipID                                           [64]byte
	family, model                                    uint8
}

// sign writes a version 3 report with the fields and signs it with key.
func (f *reportFields) sign(t *testing.T, key *ecdsa.PrivateKey) []byte {
	b := make([]byte, ReportSize)
	le := binary.LittleEndian
	le.PutUint32(b[0x00:], 3)
	le.PutUint32(b[0x04:], f.guestSVN)
	le.PutUint64(b[0x08:], f.policy)
	copy(b[0x10:], f.familyID[:])
	copy(b[0x20:], f.imageID[:])
	le.PutUint32(b[0x30:], f.vmpl)
	le.PutUint32(b[0x34:], SigAlgoECDSAP384SHA384)
	le.PutUint64(b[0x38:], f.currentTCB)
	le.PutUint64(b[0x40:], f.platformInfo)
	le.PutUint32(b[0x48:], 1|uint32(f.signingKey)<<2) // AUTHOR_KEY_EN
	copy(b[0x90:], f.measurement[:])
	copy(b[0xC0:], f.hostData[:])
	copy(b[0xE0:], f.idKeyDigest[:])
	copy(b[0x110:], f.authorKeyDigest[:])
	le.PutUint64(b[0x180:], f.reportedTCB)
	b[0x188], b[0x189] = f.family, f.model
	copy(b[0x1A0:], f.chipID[:])
	le.PutUint64(b[0x1E0:], f.committedTCB)
	b[0x1E8], b[0x1E9], b[0x1EA] = f.current.Build, f.current.Minor, f.current.Major
	b[0x1EC], b[0x1ED], b[0x1EE] = f.committed.Build, f.committed.Minor, f.committed.Major
	le.PutUint64(b[0x1F0:], f.launchTCB)
	d := sha512.Sum384(b[:SignedSize])
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	rb, sb := r.FillBytes(make([]byte, 48)), s.FillBytes(make([]byte, 48))
	for i := range 48 {
		b[SignedSize+i] = rb[47-i]
		b[SignedSize+72+i] = sb[47-i]
	}
	return b
}

func milanTCB(t TCB) uint64 {
	return uint64(t.Bootloader) | uint64(t.TEE)<<8 | uint64(t.SNP)<<48 | uint64(t.Microcode)<<56
}

func h48(s string) (d [48]byte) { return sha512.Sum384([]byte(s)) }

// snpLab issues VCEKs and VLEKs under a test ARK and verifies reports.
type snpLab struct {
	t   *testing.T
	pki *testPKI
	key *ecdsa.PrivateKey
}

func (l *snpLab) vcek(p Product, tcb TCB, chip []byte) *x509.Certificate {
	hwid := chip
	if p == Turin {
		hwid = chip[:8]
	}
	return mkCert(l.t, "SEV-VCEK", l.pki.root.ASK, &l.key.PublicKey, l.pki.askKey, kdsExt(l.t, string(p)+"-B0", tcb, p == Turin, hwid, ""), notBefore.AddDate(7, 0, 0))
}

func (l *snpLab) verify(report []byte, leaf *x509.Certificate, guid GUID) (*attest.Claims, error) {
	tab := &CertTable{Entries: []CertEntry{{GUID: guid, Data: leaf.Raw}}}
	v := &Verifier{Roots: []Root{l.pki.root}}
	return v.Verify(l.t.Context(), &attest.Evidence{Platform: attest.PlatformSNP, Data: report, Aux: tab.Marshal()}, attest.VerifyOptions{Time: notBefore.AddDate(0, 6, 0)})
}

func TestSNPPolicyOnSignedReports(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	lab := &snpLab{t: t, pki: newTestPKI(t, Milan), key: key}
	tcb := TCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}
	var chip [64]byte
	copy(chip[:], bytes.Repeat([]byte{0xc1}, 64))
	base := reportFields{
		guestSVN: 2, policy: PolicyReserved1 | PolicySingleSock | 1<<8 | 55, vmpl: 0,
		currentTCB: milanTCB(tcb), reportedTCB: milanTCB(tcb), committedTCB: milanTCB(tcb), launchTCB: milanTCB(tcb),
		platformInfo: 1 << 1, // TSME_EN
		current:      attest.SNPFirmwareVersion{Major: 1, Minor: 55, Build: 21},
		committed:    attest.SNPFirmwareVersion{Major: 1, Minor: 55, Build: 21},
		signingKey:   SigningKeyVCEK, measurement: h48("guest image"), idKeyDigest: h48("id key"), authorKeyDigest: h48("author key"),
		chipID: chip, family: 0x19, model: 0x01,
	}
	copy(base.hostData[:], "host data: a digest of the VM configuration")
	copy(base.familyID[:], "ppml family id")
	copy(base.imageID[:], "ppml image id")
	hx := func(b []byte) string { return hex.EncodeToString(b) }
	doc := fmt.Sprintf(`version: 1
platforms:
  snp:
    measurements: [%s]
    min_security_version: 2
    max_vmpl: 0
    host_data: [%s]
    id_key_digest: [%s]
    author_key_digest: [%s]
    family_id: [%s]
    image_id: [%s]
    chip_id: [%s]
    signing_keys: [vcek]
    guest_policy: {require: [SINGLE_SOCKET], forbid: [SMT, CXL_ALLOW], min_abi: "1.55"}
    platform_info: {require: [TSME_EN], forbid: [SMT_EN]}
    min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}
    min_committed_tcb: {snp: 8}
    min_launch_tcb: {microcode: 115}
    min_firmware_version: "1.55.21"
    min_committed_firmware_version: "1.55.4"
`, hx(base.measurement[:]), hx(base.hostData[:]), hx(base.idKeyDigest[:]), hx(base.authorKeyDigest[:]), hx(base.familyID[:]), hx(base.imageID[:]), hx(chip[:]))
	pol, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	vcek := lab.vcek(Milan, tcb, chip[:])
	cl, err := lab.verify(base.sign(t, key), vcek, GUIDVCEK)
	if err != nil {
		t.Fatal(err)
	}
	if d := policy.Evaluate(pol, cl, nil, notBefore); !d.Allow {
		t.Fatalf("base report: %+v", d)
	}
	if cl.GuestPolicy.ABIMajor != 1 || cl.GuestPolicy.ABIMinor != 55 || strings.Join(cl.PlatformInfo.Flags, ",") != "TSME_EN" || cl.FirmwareVersion.String() != "1.55.21" || cl.CommittedFirmwareVersion.String() != "1.55.21" {
		t.Fatalf("claims %+v %+v %v %v", cl.GuestPolicy, cl.PlatformInfo, cl.FirmwareVersion, cl.CommittedFirmwareVersion)
	}

	lowTCB := tcb
	lowTCB.Microcode = 114
	var otherChip [64]byte
	copy(otherChip[:], bytes.Repeat([]byte{0xc2}, 64))
	vlek := mkCert(t, "SEV-VLEK", lab.pki.root.ASVK, &key.PublicKey, lab.pki.asvkKey, kdsExt(t, "Milan-B0", tcb, false, nil, "Example Cloud"), notBefore.AddDate(1, 0, 0))
	f := "platforms.snp."
	for _, c := range []struct {
		name  string
		edit  func(r *reportFields)
		leaf  *x509.Certificate // default: the VCEK
		guid  GUID
		rule  string
		field string
	}{
		{name: "measurement", edit: func(r *reportFields) { r.measurement = h48("other image") }, rule: policy.RuleMeasurement, field: f + "measurements"},
		{name: "vmpl 1", edit: func(r *reportFields) { r.vmpl = 1 }, rule: policy.RuleVMPL, field: f + "max_vmpl"},
		{name: "vmpl 3", edit: func(r *reportFields) { r.vmpl = 3 }, rule: policy.RuleVMPL, field: f + "max_vmpl"},
		{name: "host_data", edit: func(r *reportFields) { r.hostData[0] ^= 1 }, rule: policy.RuleHostData, field: f + "host_data"},
		{name: "id key", edit: func(r *reportFields) { r.idKeyDigest = h48("someone's id key") }, rule: policy.RuleIDKeyDigest, field: f + "id_key_digest"},
		{name: "no id block", edit: func(r *reportFields) { r.idKeyDigest = [48]byte{} }, rule: policy.RuleIDKeyDigest, field: f + "id_key_digest"},
		{name: "author key", edit: func(r *reportFields) { r.authorKeyDigest = h48("someone's author key") }, rule: policy.RuleAuthorKeyDigest, field: f + "author_key_digest"},
		{name: "family id", edit: func(r *reportFields) { r.familyID[15] = 1 }, rule: policy.RuleFamilyID, field: f + "family_id"},
		{name: "image id", edit: func(r *reportFields) { r.imageID[15] = 1 }, rule: policy.RuleImageID, field: f + "image_id"},
		{name: "another chip", edit: func(r *reportFields) { r.chipID = otherChip }, leaf: lab.vcek(Milan, tcb, otherChip[:]), rule: policy.RuleChipID, field: f + "chip_id"},
		{name: "vlek", edit: func(r *reportFields) { r.signingKey = SigningKeyVLEK; r.chipID = [64]byte{} }, leaf: vlek, guid: GUIDVLEK, rule: policy.RuleSigningKey, field: f + "signing_keys"},
		{name: "debug", edit: func(r *reportFields) { r.policy |= PolicyDebug }, rule: policy.RuleDebug, field: f + "allow_debug"},
		{name: "migration agent", edit: func(r *reportFields) { r.policy |= PolicyMigrateMA }, rule: policy.RuleMigrationAgent, field: f + "allow_migration_agent"},
		{name: "smt", edit: func(r *reportFields) { r.policy |= PolicySMT }, rule: policy.RuleGuestPolicy, field: f + "guest_policy"},
		{name: "not single socket", edit: func(r *reportFields) { r.policy &^= PolicySingleSock }, rule: policy.RuleGuestPolicy, field: f + "guest_policy"},
		{name: "cxl", edit: func(r *reportFields) { r.policy |= PolicyCXLAllow }, rule: policy.RuleGuestPolicy, field: f + "guest_policy"},
		{name: "abi 1.54", edit: func(r *reportFields) { r.policy = r.policy&^0xff | 54 }, rule: policy.RuleGuestPolicy, field: f + "guest_policy.min_abi"},
		{name: "SMT on the host", edit: func(r *reportFields) { r.platformInfo |= 1 }, rule: policy.RulePlatformInfo, field: f + "platform_info"},
		{name: "no TSME", edit: func(r *reportFields) { r.platformInfo = 0 }, rule: policy.RulePlatformInfo, field: f + "platform_info"},
		{name: "reported microcode", edit: func(r *reportFields) { r.reportedTCB = milanTCB(lowTCB) }, leaf: lab.vcek(Milan, lowTCB, chip[:]), rule: policy.RuleSNPTCB, field: f + "min_reported_tcb.microcode"},
		{name: "committed snp", edit: func(r *reportFields) { r.committedTCB = milanTCB(TCB{Bootloader: 3, SNP: 7, Microcode: 115}) }, rule: policy.RuleSNPTCB, field: f + "min_committed_tcb.snp"},
		{name: "launch microcode", edit: func(r *reportFields) { r.launchTCB = milanTCB(lowTCB) }, rule: policy.RuleSNPTCB, field: f + "min_launch_tcb.microcode"},
		{name: "guest svn", edit: func(r *reportFields) { r.guestSVN = 1 }, rule: policy.RuleSecurityVer, field: f + "min_security_version"},
		// The committed version may trail the running one down to the
		// policy's minimum; a running firmware one build older, or a
		// committed one that lets the host roll back below 1.55.4, denies.
		{name: "committed at its minimum", edit: func(r *reportFields) { r.committed.Build = 4 }},
		{name: "newer minor, build 0", edit: func(r *reportFields) { r.current = attest.SNPFirmwareVersion{Major: 1, Minor: 57} }},
		{name: "firmware build", edit: func(r *reportFields) { r.current.Build = 20; r.committed.Build = 20 }, rule: policy.RuleSNPFirmware, field: f + "min_firmware_version"},
		{name: "firmware 1.9.99", edit: func(r *reportFields) {
			r.current = attest.SNPFirmwareVersion{Major: 1, Minor: 9, Build: 99}
			r.committed = r.current
		}, rule: policy.RuleSNPFirmware, field: f + "min_firmware_version"},
		{name: "committed build", edit: func(r *reportFields) { r.committed.Build = 3 }, rule: policy.RuleSNPFirmware, field: f + "min_committed_firmware_version"},
		{name: "committed minor", edit: func(r *reportFields) { r.committed = attest.SNPFirmwareVersion{Major: 1, Minor: 54, Build: 200} }, rule: policy.RuleSNPFirmware, field: f + "min_committed_firmware_version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := base
			c.edit(&r)
			leaf, guid := vcek, GUIDVCEK
			if c.leaf != nil {
				leaf = c.leaf
			}
			if c.guid != (GUID{}) {
				guid = c.guid
			}
			cl, err := lab.verify(r.sign(t, key), leaf, guid)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if *cl.FirmwareVersion != r.current || *cl.CommittedFirmwareVersion != r.committed {
				t.Fatalf("claims say firmware %v committed %v, the report %v %v", cl.FirmwareVersion, cl.CommittedFirmwareVersion, r.current, r.committed)
			}
			d := policy.Evaluate(pol, cl, nil, notBefore)
			if d.Allow != (c.rule == "") || d.Rule != c.rule || d.Field != c.field {
				t.Fatalf("got %+v, want rule %q field %q", d, c.rule, c.field)
			}
			t.Logf("%s: %s", d.Field, d.Reason)
		})
	}
}

// TestTurinFMCRule: a minimum FMC SPL holds on Turin reports and denies
// reports of products without an FMC.
func TestTurinFMCRule(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	lab := &snpLab{t: t, pki: newTestPKI(t, Turin), key: key}
	pol, err := policy.Parse([]byte("version: 1\nplatforms:\n  snp:\n    measurements: [" + hex.EncodeToString(make([]byte, 48)) + "]\n    min_reported_tcb: {fmc: 2, snp: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var chip [64]byte
	copy(chip[:], "turin chip")
	for _, fmc := range []uint8{2, 1} {
		tcb := TCB{FMC: fmc, Bootloader: 2, TEE: 3, SNP: 4, Microcode: 5}
		r := reportFields{policy: PolicyReserved1, currentTCB: turinTCB(tcb), reportedTCB: turinTCB(tcb), committedTCB: turinTCB(tcb), launchTCB: turinTCB(tcb),
			signingKey: SigningKeyVCEK, chipID: chip, family: 0x1A, model: 0x02}
		cl, err := lab.verify(r.sign(t, key), lab.vcek(Turin, tcb, chip[:]), GUIDVCEK)
		if err != nil {
			t.Fatal(err)
		}
		if cl.ReportedTCB.FMC == nil || *cl.ReportedTCB.FMC != fmc {
			t.Fatalf("fmc claim %+v", cl.ReportedTCB)
		}
		d := policy.Evaluate(pol, cl, nil, notBefore)
		if fmc == 2 && !d.Allow || fmc == 1 && (d.Field != "platforms.snp.min_reported_tcb.fmc" || !strings.Contains(d.Reason, "fmc SPL is 1, the policy's minimum is 2")) {
			t.Fatalf("fmc %d: %+v", fmc, d)
		}
	}
}
