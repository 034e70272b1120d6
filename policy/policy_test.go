package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
)

var (
	mrenclave = sha256.Sum256([]byte("enclave v1"))
	mrsigner  = sha256.Sum256([]byte("signer key"))
	mrtd      = sha512.Sum384([]byte("td image"))
	snpMeas   = sha512.Sum384([]byte("snp guest"))
	simMeas   = sha512.Sum384([]byte("ppml binary"))
	simSigner = sha256.Sum256([]byte("simulation signing key"))
	jobA      = sha256.Sum256([]byte("job manifest A"))
	jobB      = sha256.Sum256([]byte("job manifest B"))
	now       = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

const basePolicy = `
version: 1
not_before: 2026-01-01T00:00:00Z
not_after: 2027-01-01T00:00:00Z
jobs:
  - %JOBA%
platforms:
  sgx:
    measurements: [%MRENCLAVE%]
    signers: [%MRSIGNER%]
    product_id: 7
    min_security_version: 3
    tcb_statuses: [UpToDate, SWHardeningNeeded]
    allowed_advisories: [INTEL-SA-00615]
  tdx:
    measurements: [%MRTD%]
  snp:
    measurements: [%SNP%]
    allow_smt: false
  sim:
    measurements: [%SIM%]
`

func expand(s string) string {
	return strings.NewReplacer(
		"%JOBA%", hex.EncodeToString(jobA[:]), "%MRENCLAVE%", hex.EncodeToString(mrenclave[:]),
		"%MRSIGNER%", hex.EncodeToString(mrsigner[:]), "%MRTD%", hex.EncodeToString(mrtd[:]),
		"%SNP%", hex.EncodeToString(snpMeas[:]), "%SIM%", hex.EncodeToString(simMeas[:]),
		"%SIMSIGNER%", hex.EncodeToString(simSigner[:]),
	).Replace(s)
}

func mustParse(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(expand(doc)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sgxClaims() *attest.Claims {
	return &attest.Claims{
		Platform: attest.PlatformSGX, TEEType: "sgx-enclave", EvidenceVersion: 3,
		Measurement: mrenclave[:], Signer: mrsigner[:], MREnclave: mrenclave[:], MRSigner: mrsigner[:],
		ProductID: 7, SecurityVersion: 3, TCBStatus: "UpToDate", VerifiedAt: now,
	}
}

func TestEvaluateEveryRule(t *testing.T) {
	p := mustParse(t, basePolicy)
	type tc struct {
		name   string
		claims func(c *attest.Claims) *attest.Claims
		job    []byte
		at     time.Time
		rule   string // "" = allow
	}
	sgx := func(f func(c *attest.Claims)) func(*attest.Claims) *attest.Claims {
		return func(c *attest.Claims) *attest.Claims { f(c); return c }
	}
	cases := []tc{
		{"sgx allowed", sgx(func(c *attest.Claims) {}), jobA[:], now, ""},
		{"sgx SWHardeningNeeded listed", sgx(func(c *attest.Claims) { c.TCBStatus = TCBSWHardeningNeeded }), jobA[:], now, ""},
		{"allowed advisory", sgx(func(c *attest.Claims) { c.Advisories = []string{"INTEL-SA-00615"} }), jobA[:], now, ""},
		{"higher svn", sgx(func(c *attest.Claims) { c.SecurityVersion = 9 }), jobA[:], now, ""},
		{"nil claims", func(*attest.Claims) *attest.Claims { return nil }, jobA[:], now, RuleNoClaims},
		{"before not_before", sgx(func(c *attest.Claims) {}), jobA[:], time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), RuleNotYetValid},
		{"after not_after", sgx(func(c *attest.Claims) {}), jobA[:], time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), RuleExpired},
		{"unlisted platform", sgx(func(c *attest.Claims) { c.Platform = "cca" }), jobA[:], now, RulePlatform},
		{"insecure hardware claims", sgx(func(c *attest.Claims) { c.Insecure = true }), jobA[:], now, RuleInsecure},
		{"debug enclave", sgx(func(c *attest.Claims) { c.Debug = true }), jobA[:], now, RuleDebug},
		{"other measurement", sgx(func(c *attest.Claims) { c.Measurement = mrtd[:32] }), jobA[:], now, RuleMeasurement},
		{"no measurement", sgx(func(c *attest.Claims) { c.Measurement = nil }), jobA[:], now, RuleMeasurement},
		{"other signer", sgx(func(c *attest.Claims) { c.Signer = simSigner[:] }), jobA[:], now, RuleSigner},
		{"no signer", sgx(func(c *attest.Claims) { c.Signer = nil }), jobA[:], now, RuleSigner},
		{"other product", sgx(func(c *attest.Claims) { c.ProductID = 8 }), jobA[:], now, RuleProductID},
		{"old svn", sgx(func(c *attest.Claims) { c.SecurityVersion = 2 }), jobA[:], now, RuleSecurityVer},
		{"OutOfDate", sgx(func(c *attest.Claims) { c.TCBStatus = TCBOutOfDate }), jobA[:], now, RuleTCBStatus},
		{"Revoked", sgx(func(c *attest.Claims) { c.TCBStatus = TCBRevoked }), jobA[:], now, RuleTCBStatus},
		{"no TCB status", sgx(func(c *attest.Claims) { c.TCBStatus = "" }), jobA[:], now, RuleTCBStatus},
		{"advisory not allowed", sgx(func(c *attest.Claims) { c.Advisories = []string{"INTEL-SA-00615", "INTEL-SA-00837"} }), jobA[:], now, RuleAdvisory},
		{"job not listed", sgx(func(c *attest.Claims) {}), jobB[:], now, RuleJob},
		{"no job", sgx(func(c *attest.Claims) {}), nil, now, RuleJob},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Evaluate(p, c.claims(sgxClaims()), c.job, c.at)
			if d.Allow != (c.rule == "") || d.Rule != c.rule {
				t.Fatalf("decision %+v, want rule %q", d, c.rule)
			}
			if d.Reason == "" {
				t.Fatal("no reason")
			}
			t.Logf("%s: %s", d.Rule, d.Reason)
		})
	}
}

func TestEvaluateNamesTheAdvisory(t *testing.T) {
	p := mustParse(t, basePolicy)
	c := sgxClaims()
	c.TCBStatus, c.Advisories = TCBSWHardeningNeeded, []string{"INTEL-SA-00615", "INTEL-SA-00837"}
	d := Evaluate(p, c, jobA[:], now)
	if d.Rule != RuleAdvisory || !strings.Contains(d.Reason, "INTEL-SA-00837") {
		t.Fatalf("%+v", d)
	}
}

func TestEvaluateOtherPlatforms(t *testing.T) {
	p := mustParse(t, basePolicy)
	tdx := &attest.Claims{Platform: attest.PlatformTDX, TEEType: "tdx-td", Measurement: mrtd[:], MRTD: mrtd[:], TCBStatus: TCBUpToDate}
	if d := Evaluate(p, tdx, jobA[:], now); !d.Allow {
		t.Fatalf("tdx: %+v", d)
	}
	// The SNP verifier reports no TCB status (AMD has no TCB status collateral).
	snp := &attest.Claims{Platform: attest.PlatformSNP, TEEType: "sev-snp-guest", Measurement: snpMeas[:], SecurityVersion: 1}
	if d := Evaluate(p, snp, jobA[:], now); !d.Allow {
		t.Fatalf("snp: %+v", d)
	}
	snp.TCBStatus = TCBOutOfDate // a status, when given, is checked
	if d := Evaluate(p, snp, jobA[:], now); d.Rule != RuleTCBStatus {
		t.Fatalf("snp OutOfDate: %+v", d)
	}
	snp.TCBStatus = ""
	snp.SMTAllowed = true
	if d := Evaluate(p, snp, jobA[:], now); d.Rule != RuleSMT {
		t.Fatalf("snp with SMT: %+v", d)
	}
	snp.SMTAllowed, snp.MigrationAgent = false, true
	if d := Evaluate(p, snp, jobA[:], now); d.Rule != RuleMigrationAgent {
		t.Fatalf("snp with migration agent: %+v", d)
	}
	// allow_smt absent accepts SMT; allow_migration_agent: true accepts the agent.
	p2 := mustParse(t, `
version: 1
platforms:
  snp:
    measurements: [%SNP%]
    allow_migration_agent: true
`)
	snp.SMTAllowed = true
	if d := Evaluate(p2, snp, nil, now); !d.Allow {
		t.Fatalf("snp, permissive guest policy: %+v", d)
	}
	// Debug SNP guest.
	snp.Debug = true
	if d := Evaluate(p2, snp, nil, now); d.Rule != RuleDebug {
		t.Fatalf("snp debug: %+v", d)
	}
}

func simClaims() *attest.Claims {
	return &attest.Claims{Platform: attest.PlatformSim, TEEType: "simulated", Insecure: true, Measurement: simMeas[:], Signer: simSigner[:]}
}

func TestSimulatedTEEOnlyWhenListed(t *testing.T) {
	withSim := mustParse(t, basePolicy)
	if d := Evaluate(withSim, simClaims(), jobA[:], now); !d.Allow {
		t.Fatalf("sim listed: %+v", d)
	}
	noSim := mustParse(t, `
version: 1
platforms:
  sgx: {signers: [%MRSIGNER%]}
  tdx: {measurements: [%MRTD%]}
  snp: {measurements: [%SNP%]}
`)
	d := Evaluate(noSim, simClaims(), nil, now)
	if d.Rule != RulePlatform || !strings.Contains(d.Reason, "simulated TEE evidence is refused") {
		t.Fatalf("sim not listed: %+v", d)
	}
	c := simClaims()
	c.Insecure = false
	if d := Evaluate(withSim, c, jobA[:], now); d.Rule != RuleInsecure {
		t.Fatalf("sim not marked insecure: %+v", d)
	}
	// A sim TCB status, when given, is still checked.
	c = simClaims()
	c.TCBStatus = TCBOutOfDate
	if d := Evaluate(withSim, c, jobA[:], now); d.Rule != RuleTCBStatus {
		t.Fatalf("sim with OutOfDate: %+v", d)
	}
}

func TestDefaults(t *testing.T) {
	p := mustParse(t, `
version: 1
platforms:
  sgx: {signers: [%MRSIGNER%]}
`)
	c := sgxClaims()
	c.SecurityVersion = 0
	if d := Evaluate(p, c, jobB[:], now); !d.Allow {
		t.Fatalf("signer-only policy, any job, any time: %+v", d)
	}
	for _, st := range []string{TCBLevelNotSupported, TCBSWHardeningNeeded, TCBOutOfDate, TCBConfigurationNeeded} {
		c.TCBStatus = st
		if d := Evaluate(p, c, nil, now); d.Rule != RuleTCBStatus {
			t.Fatalf("default accepted %s: %+v", st, d)
		}
	}
	c.TCBStatus = TCBUpToDate
	c.Debug = true
	if d := Evaluate(p, c, nil, now); d.Rule != RuleDebug {
		t.Fatalf("default accepted debug: %+v", d)
	}
	p.Platforms["sgx"].AllowDebug = true
	if d := Evaluate(p, c, nil, now); !d.Allow {
		t.Fatalf("allow_debug: %+v", d)
	}
}

func TestEmptyAndInvalidPoliciesDeny(t *testing.T) {
	c := sgxClaims()
	for name, p := range map[string]*Policy{
		"nil":          nil,
		"zero":         {},
		"no platforms": {Version: 1},
		"nil rules":    {Version: 1, Platforms: map[attest.Platform]*PlatformRules{"sgx": nil}},
		"empty rules":  {Version: 1, Platforms: map[attest.Platform]*PlatformRules{"sgx": {}}},
		"short hash":   {Version: 1, Platforms: map[attest.Platform]*PlatformRules{"sgx": {Measurements: []attest.Hex{{1, 2}}}}},
	} {
		if d := Evaluate(p, c, nil, now); d.Allow || d.Rule == "" || d.Reason == "" {
			t.Errorf("%s: %+v", name, d)
		}
	}
}

func TestParseJSON(t *testing.T) {
	doc := expand(`{"version": 1, "jobs": ["%JOBA%"], "not_after": "2027-01-01T00:00:00Z",
	  "platforms": {"sgx": {"measurements": ["%MRENCLAVE%"], "product_id": 7, "tcb_statuses": ["UpToDate"]}}}`)
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.NotAfter == nil || !p.NotAfter.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("not_after %v", p.NotAfter)
	}
	c := sgxClaims()
	if d := Evaluate(p, c, jobA[:], now); !d.Allow {
		t.Fatalf("%+v", d)
	}
	// Round trips through both encodings.
	for _, enc := range []func() ([]byte, error){p.JSON, p.YAML} {
		b, err := enc()
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("reparse %s: %v", b, err)
		}
		if d := Evaluate(q, c, jobA[:], now); !d.Allow {
			t.Fatalf("after round trip: %+v", d)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":                  "",
		"no version":             "platforms:\n  sgx: {signers: [%MRSIGNER%]}\n",
		"version 2":              "version: 2\n",
		"unknown field":          "version: 1\nallow_all: true\n",
		"unknown platform field": "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%], mrenclave: [%MRENCLAVE%]}\n",
		"typo in JSON":           `{"version": 1, "platform": {}}`,
		"duplicate key":          "version: 1\nversion: 1\n",
		"bad hex":                "version: 1\nplatforms:\n  sgx: {measurements: [xyz]}\n",
		"short measurement":      "version: 1\nplatforms:\n  sgx: {measurements: [abcd]}\n",
		"tdx measurement 32":     "version: 1\nplatforms:\n  tdx: {measurements: [%MRENCLAVE%]}\n",
		"unknown platform":       "version: 1\nplatforms:\n  cca: {measurements: [%MRENCLAVE%]}\n",
		"no identity":            "version: 1\nplatforms:\n  sgx: {product_id: 1}\n",
		"null rules":             "version: 1\nplatforms:\n  sgx:\n",
		"revoked":                "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%], tcb_statuses: [Revoked]}\n",
		"unknown status":         "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%], tcb_statuses: [UptoDate]}\n",
		"snp field on sgx":       "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%], allow_smt: true}\n",
		"job not sha256":         "version: 1\njobs: [abcd]\n",
		"window reversed":        "version: 1\nnot_before: 2027-01-01T00:00:00Z\nnot_after: 2026-01-01T00:00:00Z\n",
		"two documents":          "version: 1\n---\nversion: 1\n",
		"negative svn":           "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%], min_security_version: -1}\n",
		"product id too big":     "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%], product_id: 70000}\n",
		"not a mapping":          "- version: 1\n",
	} {
		if _, err := Parse([]byte(expand(doc))); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestDocExamplesParse keeps docs/policy.md honest: every yaml and json
// block in it must be a valid policy.
func TestDocExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d examples in docs/policy.md", len(blocks))
	}
	for i, b := range blocks {
		if bytes.Contains(b[2], []byte("# not a policy")) {
			continue
		}
		if _, err := Parse(b[2]); err != nil {
			t.Errorf("example %d (%s): %v\n%s", i+1, b[1], err, b[2])
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(expand(basePolicy)))
	f.Add([]byte(expand(`{"version": 1, "platforms": {"sgx": {"measurements": ["%MRENCLAVE%"]}}}`)))
	f.Add([]byte(expand("version: 1\nplatforms: {sim: {signers: [%SIMSIGNER%]}}\n")))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte(expand(fullTDX)))
	f.Add([]byte(expand(fullSNP)))
	claims := []*attest.Claims{sgxClaims(), tdxClaims(), snpClaims()}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid policy: %v", err)
		}
		// Whatever parses evaluates without panicking and re-encodes to an
		// equivalent policy.
		b, err := p.YAML()
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("re-encoded policy does not parse: %v\n%s", err, b)
		}
		for _, c := range claims {
			d := Evaluate(p, c, jobA[:], now)
			if d2 := Evaluate(q, c, jobA[:], now); d2 != d {
				t.Fatalf("decision changed after round trip: %+v vs %+v", d, d2)
			}
			if !d.Allow && (d.Rule == "" || d.Reason == "") {
				t.Fatalf("denial without rule or reason: %+v", d)
			}
		}
	})
}

// A digest pasted as `ppml job digest` prints it ("sha256:...") means the same
// job as its bare hex digits, in YAML and in JSON.
func TestJobDigestPrefix(t *testing.T) {
	const hexDigest = "3b4c1f0a9e6d2b7c8a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a090"
	docs := []string{
		"version: 1\njobs: [sha256:" + hexDigest + "]\n",
		`{"version":1,"jobs":["sha256:` + hexDigest + `"],"platforms":{}}`,
		"version: 1\njobs: [" + hexDigest + "]\n",
	}
	for i, d := range docs {
		p, err := Parse([]byte(d))
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		if len(p.Jobs) != 1 || p.Jobs[0].String() != "sha256:"+hexDigest {
			t.Fatalf("doc %d: jobs = %v", i, p.Jobs)
		}
	}
	if _, err := Parse([]byte("version: 1\njobs: [sha256:zz]\n")); err == nil {
		t.Fatal("a non-hex digest after the prefix was accepted")
	}
}

// TestUnusableTCBStatusesRefusedAtLoad: statuses that mean the TCB is
// unusable cannot be listed; the policy is refused when it is set, with a
// message that says why, rather than releasing keys to such platforms.
func TestUnusableTCBStatusesRefusedAtLoad(t *testing.T) {
	for status, why := range map[string]string{
		"TCB_LEVEL_NOT_SUPPORTED": "Intel lists no TCB level",
		"Revoked":                 "Intel revoked this TCB level",
	} {
		doc := "version: 1\nplatforms:\n  tdx:\n    measurements: [%MRTD%]\n    tcb_statuses: [UpToDate, " + status + "]\n"
		_, err := Parse([]byte(expand(doc)))
		want := "policy: platforms.tdx: tcb_statuses: " + status + " can never be accepted: " + why
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %q…", status, err, want)
		}
	}
	// A policy built in code that lists it denies as invalid.
	p := mustParse(t, "version: 1\nplatforms:\n  sgx: {signers: [%MRSIGNER%]}\n")
	p.Platforms["sgx"].TCBStatuses = []string{TCBLevelNotSupported}
	c := sgxClaims()
	c.TCBStatus = TCBLevelNotSupported
	if d := Evaluate(p, c, nil, now); d.Allow || d.Rule != RuleInvalidPolicy || !strings.Contains(d.Reason, "TCB_LEVEL_NOT_SUPPORTED can never be accepted") {
		t.Fatalf("%+v", d)
	}
}
