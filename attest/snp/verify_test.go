package snp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/internal/shareddata"
	"github.com/ppml/ppml/policy"
)

type vector struct {
	ID          string  `json:"id"`
	Platform    string  `json:"platform"`
	Evidence    string  `json:"evidence"`
	VCEK        string  `json:"vcek"`
	Chain       string  `json:"chain"`
	Valid       bool    `json:"valid"`
	ReportData  string  `json:"report_data"`
	Measurement string  `json:"measurement"`
	At          *string `json:"at"`
}

type snpCase struct {
	vector
	report, vcek, chain []byte
}

func loadCases(t testing.TB) []snpCase {
	t.Helper()
	path := shareddata.Require(t, "attestation", "vectors.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var out []snpCase
	for _, v := range vs {
		if v.Platform != "snp" {
			continue
		}
		out = append(out, snpCase{vector: v, report: read(v.Evidence), vcek: read(v.VCEK), chain: read(v.Chain)})
	}
	if len(out) < 4 {
		t.Fatalf("only %d SNP vectors", len(out))
	}
	return out
}

func (c snpCase) evidence(t testing.TB) *attest.Evidence {
	t.Helper()
	aux, err := TableFromCerts(c.vcek, c.chain)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.Evidence{Platform: attest.PlatformSNP, Data: c.report, Aux: aux}
}

// inside returns a verification time inside the VCEK's validity (vectors
// carry no time for SNP): the middle of the VCEK's validity window.
func (c snpCase) inside(t testing.TB) time.Time {
	v, err := x509.ParseCertificate(c.vcek)
	if err != nil {
		t.Fatal(err)
	}
	return v.NotBefore.Add(v.NotAfter.Sub(v.NotBefore) / 2)
}

func checkName(err error) string {
	var ce *attest.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return ""
}

func TestVectors(t *testing.T) {
	v := &Verifier{}
	for _, c := range loadCases(t) {
		t.Run(c.ID, func(t *testing.T) {
			at := c.inside(t)
			cl, err := v.Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: at})
			if !c.Valid {
				if err == nil {
					t.Fatal("invalid case verified")
				}
				if strings.Contains(c.ID, "forged") && checkName(err) != "vcek_chain" {
					t.Fatalf("forged VCEK failed on %q, want vcek_chain: %v", checkName(err), err)
				}
				t.Logf("rejected as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.ReportData.String(); got != c.ReportData {
				t.Errorf("report_data %s, want %s", got, c.ReportData)
			}
			if got := cl.Measurement.String(); got != c.Measurement {
				t.Errorf("measurement %s, want %s", got, c.Measurement)
			}
			if cl.Platform != attest.PlatformSNP || cl.TEEType != "sev-snp-guest" || cl.SigningKey != "vcek" || cl.Insecure {
				t.Errorf("claims header %+v", cl)
			}
			rep, _ := ParseReport(c.report)
			if cl.Debug != (rep.Policy&PolicyDebug != 0) || cl.SMTAllowed != (rep.Policy&PolicySMT != 0) || cl.MigrationAgent != (rep.Policy&PolicyMigrateMA != 0) {
				t.Errorf("policy bits: claims %+v, policy %#x", cl, rep.Policy)
			}
			if !cl.CollateralNotBefore.Before(at) || !cl.CollateralNotAfter.After(at) {
				t.Errorf("window %s..%s does not contain %s", cl.CollateralNotBefore, cl.CollateralNotAfter, at)
			}
		})
	}
}

func TestPolicyBitsFromRealReports(t *testing.T) {
	// trustee's report has policy 0x3001f: SMT allowed, no debug, no migration agent.
	for _, c := range loadCases(t) {
		if c.ID != "trustee-milan" {
			continue
		}
		cl, err := (&Verifier{}).Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: c.inside(t)})
		if err != nil {
			t.Fatal(err)
		}
		gp := cl.GuestPolicy
		if gp.Raw != 0x3001f || gp.ABIMajor != 0 || gp.ABIMinor != 0x1f || strings.Join(gp.Flags, ",") != "SMT,RESERVED_1" ||
			!cl.SMTAllowed || cl.Debug || cl.MigrationAgent || cl.SecurityVersion != 4 {
			t.Fatalf("claims %+v, guest policy %+v", cl, gp)
		}
		if cl.VMPL == nil || cl.SNPProduct != "Milan" || cl.ReportedTCB.FMC != nil || cl.ReportedTCB.Undecoded {
			t.Fatalf("claims %+v", cl)
		}
		t.Logf("reported %s committed %s launch %s current %s platform_info %+v firmware %s committed %s", cl.ReportedTCB, cl.CommittedTCB, cl.LaunchTCB, cl.CurrentTCB, cl.PlatformInfo, cl.FirmwareVersion, cl.CommittedFirmwareVersion)
	}
}

// TestFirmwareVersionsFromRealReports: the claims' current and committed
// firmware versions are the report's bytes 0x1E8-0x1EA and 0x1EC-0x1EE
// (build, minor, major), read here straight from the files; and policy
// minimums hold and refuse on real reports at the boundary.
func TestFirmwareVersionsFromRealReports(t *testing.T) {
	want := map[string]string{"gosev-milan": "1.49.3", "trustee-milan": "1.52.4", "virtee-milan": "1.52.4"}
	seen := 0
	for _, c := range loadCases(t) {
		if !c.Valid {
			continue
		}
		cl, err := (&Verifier{}).Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: c.inside(t)})
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		b := c.report
		cur := attest.SNPFirmwareVersion{Build: b[0x1E8], Minor: b[0x1E9], Major: b[0x1EA]}
		com := attest.SNPFirmwareVersion{Build: b[0x1EC], Minor: b[0x1ED], Major: b[0x1EE]}
		if cl.FirmwareVersion == nil || *cl.FirmwareVersion != cur || cl.CommittedFirmwareVersion == nil || *cl.CommittedFirmwareVersion != com {
			t.Fatalf("%s: claims %v committed %v, report bytes %v committed %v", c.ID, cl.FirmwareVersion, cl.CommittedFirmwareVersion, cur, com)
		}
		if w, ok := want[c.ID]; ok {
			seen++
			if cur.String() != w || com.String() != w {
				t.Fatalf("%s: firmware %s committed %s, want %s", c.ID, cur, com, w)
			}
		}
		js, _ := json.Marshal(cl)
		if !strings.Contains(string(js), fmt.Sprintf(`"firmware_version":{"major":%d,"minor":%d,"build":%d}`, cur.Major, cur.Minor, cur.Build)) {
			t.Fatalf("%s: claims JSON %s", c.ID, js)
		}
		next := cur
		next.Build++
		for _, tc := range []struct {
			rule  string
			min   attest.SNPFirmwareVersion
			allow bool
		}{
			{"min_firmware_version", cur, true},
			{"min_firmware_version", next, false},
			{"min_committed_firmware_version", com, true},
			{"min_committed_firmware_version", attest.SNPFirmwareVersion{Major: com.Major, Minor: com.Minor + 1}, false},
		} {
			// Only the firmware rule is under test: accept what else the
			// published reports carry (gosev's guest is debuggable).
			doc := fmt.Sprintf("version: 1\nplatforms:\n  snp:\n    measurements: [%s]\n    allow_debug: %t\n    allow_migration_agent: %t\n    %s: %q\n",
				cl.Measurement, cl.Debug, cl.MigrationAgent, tc.rule, tc.min)
			p, err := policy.Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			d := policy.Evaluate(p, cl, nil, cl.VerifiedAt)
			if d.Allow != tc.allow || !tc.allow && (d.Rule != policy.RuleSNPFirmware || d.Field != "platforms.snp."+tc.rule) {
				t.Fatalf("%s %s %s: %+v", c.ID, tc.rule, tc.min, d)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("checked %d of the %d known reports", seen, len(want))
	}
}

func TestValidityEdges(t *testing.T) {
	v := &Verifier{}
	for _, c := range loadCases(t) {
		if !c.Valid {
			continue
		}
		vcek, _ := x509.ParseCertificate(c.vcek)
		chain, err := ParsePEMCerts(c.chain)
		if err != nil {
			t.Fatal(err)
		}
		ask, ark := chain[0], chain[1]
		// The first certificate in chain order (ARK, ASK, VCEK) that is
		// invalid at the time is the one named.
		expect := func(at time.Time, leaf string) string {
			for _, x := range []struct {
				c    *x509.Certificate
				name string
			}{{ark, "ark"}, {ask, "ask"}, {vcek, leaf}} {
				if at.Before(x.c.NotBefore) || at.After(x.c.NotAfter) {
					return x.name + "_validity"
				}
			}
			return ""
		}
		cases := []struct {
			name  string
			at    time.Time
			check string
		}{
			{"vcek not yet valid", vcek.NotBefore.Add(-time.Second), "vcek_validity"},
			{"vcek expired", vcek.NotAfter.Add(time.Second), "vcek_validity"},
			{"ask expired", ask.NotAfter.Add(time.Second), expect(ask.NotAfter.Add(time.Second), "vcek")},
			{"ask not yet valid", ask.NotBefore.Add(-time.Second), expect(ask.NotBefore.Add(-time.Second), "vcek")},
		}
		for _, tc := range cases {
			if tc.check == "" {
				t.Fatalf("%s: no certificate invalid at %s", tc.name, tc.at)
			}
			_, err := v.Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: tc.at})
			if checkName(err) != tc.check {
				t.Errorf("%s %s: got %v, want check %s", c.ID, tc.name, err, tc.check)
			}
			if err != nil && tc.check == "vcek_validity" && !strings.Contains(err.Error(), "VCEK certificate") {
				t.Errorf("error does not name the VCEK: %v", err)
			}
		}
		// The exact edges are inside.
		for _, at := range []time.Time{vcek.NotBefore, vcek.NotAfter} {
			if _, err := v.Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: at}); err != nil {
				t.Errorf("%s at edge %s: %v", c.ID, at, err)
			}
		}
	}
}

func TestOtherChipsVCEK(t *testing.T) {
	cs := loadCases(t)
	var valid []snpCase
	for _, c := range cs {
		if c.Valid {
			valid = append(valid, c)
		}
	}
	v := &Verifier{}
	for i, a := range valid {
		b := valid[(i+1)%len(valid)]
		mixed := snpCase{vector: a.vector, report: a.report, vcek: b.vcek, chain: a.chain}
		_, err := v.Verify(context.Background(), mixed.evidence(t), attest.VerifyOptions{Time: a.inside(t)})
		if n := checkName(err); n != "chip_id" {
			t.Errorf("%s report with %s VCEK: got %v, want chip_id", a.ID, b.ID, err)
		}
	}
}

func TestMissingAndWrongInputs(t *testing.T) {
	c := loadCases(t)[0]
	v := &Verifier{}
	at := attest.VerifyOptions{Time: c.inside(t)}
	cases := []struct {
		name  string
		ev    *attest.Evidence
		check string
	}{
		{"no vcek", &attest.Evidence{Platform: attest.PlatformSNP, Data: c.report}, "vcek_missing"},
		{"wrong platform", &attest.Evidence{Platform: attest.PlatformSGX, Data: c.report}, "platform"},
		{"truncated", &attest.Evidence{Platform: attest.PlatformSNP, Data: c.report[:100]}, "report_format"},
		{"bad table", &attest.Evidence{Platform: attest.PlatformSNP, Data: c.report, Aux: []byte{1, 2, 3}}, "cert_table"},
	}
	for _, tc := range cases {
		_, err := v.Verify(context.Background(), tc.ev, at)
		if checkName(err) != tc.check {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.check)
		}
	}
	// Unknown versions are named.
	for _, ver := range []byte{0, 1, 4, 5, 200} {
		r := append([]byte(nil), c.report...)
		r[0] = ver
		_, err := ParseReport(r)
		if err == nil || !strings.Contains(err.Error(), "unsupported version") {
			t.Errorf("version %d: %v", ver, err)
		}
	}
	// A chain for another product's ASK fails on the chain, not silently.
	genoa, _ := rootFS.ReadFile("roots/amd_ask_ark_genoa_vcek.pem")
	wrong := snpCase{vector: c.vector, report: c.report, vcek: c.vcek, chain: genoa}
	_, err := v.Verify(context.Background(), wrong.evidence(t), at)
	if checkName(err) != "ask_chain" {
		t.Errorf("Genoa ASK with Milan VCEK: %v", err)
	}
}

// TestMutations flips every byte of each valid report (signed region and
// signature) and of its VCEK: every copy must be refused, none may panic.
func TestMutations(t *testing.T) {
	v := &Verifier{}
	for _, c := range loadCases(t) {
		if !c.Valid {
			continue
		}
		at := attest.VerifyOptions{Time: c.inside(t)}
		ev := c.evidence(t)
		if _, err := v.Verify(context.Background(), ev, at); err != nil {
			t.Fatal(err)
		}
		n := 0
		for pos := 0; pos < ReportSize; pos++ {
			r := append([]byte(nil), c.report...)
			r[pos] ^= byte(0x01 << (pos % 8))
			if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: r, Aux: ev.Aux}, at); err == nil {
				t.Fatalf("%s: report byte %#x flipped still verifies", c.ID, pos)
			}
			n++
		}
		for pos := 0; pos < len(c.vcek); pos++ {
			vc := append([]byte(nil), c.vcek...)
			vc[pos] ^= 0x80 >> (pos % 8)
			aux := (&CertTable{Entries: []CertEntry{{GUID: GUIDVCEK, Data: vc}}}).Marshal()
			if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: c.report, Aux: aux}, at); err == nil {
				t.Fatalf("%s: VCEK byte %d flipped still verifies", c.ID, pos)
			}
			n++
		}
		if n < 500 {
			t.Fatalf("only %d mutations", n)
		}
	}
}

func TestPinnedRoots(t *testing.T) {
	roots, err := PinnedRoots()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 3 {
		t.Fatalf("%d roots", len(roots))
	}
	for _, r := range roots {
		if r.ARK.Subject.CommonName != "ARK-"+string(r.Product) {
			t.Errorf("%s ARK is %q", r.Product, r.ARK.Subject.CommonName)
		}
	}
	// An ARK that comes with the evidence is ignored: the table from
	// TableFromCerts carries the vector's ARK, and replacing it by garbage
	// changes nothing.
	c := loadCases(t)[0]
	tab, _ := ParseCertTable(c.evidence(t).Aux)
	for i := range tab.Entries {
		if tab.Entries[i].GUID == GUIDARK {
			tab.Entries[i].Data = []byte("not a certificate")
		}
	}
	ev := &attest.Evidence{Platform: attest.PlatformSNP, Data: c.report, Aux: tab.Marshal()}
	if _, err := (&Verifier{}).Verify(context.Background(), ev, attest.VerifyOptions{Time: c.inside(t)}); err != nil {
		t.Fatal(err)
	}
}

func TestReportFieldsParse(t *testing.T) {
	c := loadCases(t)[0] // gosev-milan
	r, err := ParseReport(c.report)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(r.ReportData[:5]) != "0102030405" || r.Version != 2 || r.SigningKey != SigningKeyVCEK {
		t.Fatalf("%+v", r)
	}
	tcb := DecodeTCB(Milan, r.ReportedTCB)
	if tcb != (TCB{Bootloader: 2, TEE: 0, SNP: 5, Microcode: 0x44}) {
		t.Fatalf("tcb %v", tcb)
	}
	// Zero padding after the report is accepted, anything else is not.
	if _, err := ParseReport(append(append([]byte(nil), c.report...), make([]byte, 100)...)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseReport(append(append([]byte(nil), c.report...), 1)); err == nil {
		t.Fatal("trailing garbage accepted")
	}
}

func BenchmarkVerify(b *testing.B) {
	c := loadCases(b)[0]
	ev := c.evidence(b)
	v := &Verifier{}
	opts := attest.VerifyOptions{Time: c.inside(b)}
	if _, err := v.Verify(context.Background(), ev, opts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), ev, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	v := &Verifier{}
	cs := loadCases(t)
	done := make(chan error)
	for i := 0; i < 4; i++ {
		go func() {
			var err error
			for j := 0; j < 5 && err == nil; j++ {
				c := cs[(i+j)%len(cs)]
				_, err = v.Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: c.inside(t)})
				if !c.Valid {
					if err == nil {
						err = errors.New("invalid case verified")
					} else {
						err = nil
					}
				}
			}
			done <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestClaimsJSONSafeForJavaScript: every number in SNP claims JSON fits in
// a double's 53-bit mantissa. REPORTED_TCB (0x7300000000000803 in
// trustee's report) was a bare JSON number that JavaScript reads as
// 8286623314361715000; 64-bit fields are now "0x…" strings.
func TestClaimsJSONSafeForJavaScript(t *testing.T) {
	for _, c := range loadCases(t) {
		if !c.Valid {
			continue
		}
		cl, err := (&Verifier{}).Verify(context.Background(), c.evidence(t), attest.VerifyOptions{Time: c.inside(t)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(cl)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					walk(path+"."+k, e)
				}
			case []any:
				for i, e := range x {
					walk(fmt.Sprintf("%s[%d]", path, i), e)
				}
			case json.Number:
				if n, err := strconv.ParseFloat(string(x), 64); err != nil || n > 1<<53 || n < -(1<<53) || strconv.FormatFloat(n, 'f', -1, 64) != string(x) {
					t.Errorf("%s: %s: %s is not exact in a double", c.ID, path, x)
				}
			}
		}
		walk("claims", v)
		var raw struct {
			ReportedTCB struct{ Raw string } `json:"reported_tcb"`
		}
		json.Unmarshal(b, &raw)
		if raw.ReportedTCB.Raw != cl.ReportedTCB.Raw.String() || len(raw.ReportedTCB.Raw) != 18 {
			t.Errorf("%s: reported_tcb.raw %q", c.ID, raw.ReportedTCB.Raw)
		}
	}
}
