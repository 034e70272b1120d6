package dcap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
)

// TestCollateralWindow checks each valid case one second inside and one
// second outside the window in which all its collateral is current.
func TestCollateralWindow(t *testing.T) {
	for _, tc := range loadVectors(t) {
		if !tc.Valid {
			continue
		}
		t.Run(tc.ID, func(t *testing.T) {
			v := tc.verifier(t)
			c, err := tc.verify(t, v, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := c.CollateralNotBefore, c.CollateralNotAfter
			if !lo.Before(hi) || tc.at.Before(lo) || tc.at.After(hi) {
				t.Fatalf("window [%s, %s] does not contain at=%s", lo, hi, tc.at)
			}
			for _, at := range []time.Time{lo, hi} {
				if _, err := tc.verify(t, v, at); err != nil {
					t.Errorf("at window edge %s: %v", at, err)
				}
			}
			_, err = tc.verify(t, v, lo.Add(-time.Second))
			if checkName(err) != "collateral_not_yet_valid" {
				t.Errorf("1s before window: got %v, want collateral_not_yet_valid", err)
			} else if !strings.Contains(err.Error(), "not valid before "+lo.Format(time.RFC3339)) {
				t.Errorf("1s before window: error does not name the item and its start: %v", err)
			}
			_, err = tc.verify(t, v, hi.Add(time.Second))
			name := checkName(err)
			if !strings.HasSuffix(name, "_expired") {
				t.Errorf("1s after window: got %v, want an *_expired check", err)
			} else if item := strings.TrimSuffix(name, "_expired"); !strings.HasPrefix(err.Error(), name+": "+item+" expired at "+hi.Format(time.RFC3339)) {
				t.Errorf("1s after window: error does not name the expired item: %v", err)
			}
			t.Logf("before: ok; after: %v", err)
		})
	}
}

// TestMobilecoinHasNoValidInstant: its PCK CRL expired before its TCB info
// was issued, so no verification time may accept it.
func TestMobilecoinHasNoValidInstant(t *testing.T) {
	for _, tc := range loadVectors(t) {
		if !strings.HasPrefix(tc.ID, "mobilecoin") {
			continue
		}
		c, err := ParseBundle(tc.bundle)
		if err != nil {
			t.Fatal(err)
		}
		v := &Verifier{Source: StaticSource(c)}
		times := []time.Time{tc.at, c.TCBInfo.IssueDate, c.TCBInfo.NextUpdate, c.QEIdentity.IssueDate,
			c.PCKCRL.ThisUpdate, c.PCKCRL.NextUpdate, c.RootCRL.ThisUpdate, c.RootCRL.NextUpdate}
		for _, at := range times {
			_, err := tc.verify(t, v, at)
			n := checkName(err)
			if !strings.HasSuffix(n, "_expired") && n != "collateral_not_yet_valid" {
				t.Errorf("at %s: got %v, want a validity-time failure", at, err)
			}
		}
		_, err = tc.verify(t, v, tc.at)
		if checkName(err) != "pck_crl_expired" || !strings.Contains(err.Error(), "pck_crl expired at 2023-") {
			t.Errorf("at %s: %v, want pck_crl_expired naming its date", tc.at, err)
		}
		return
	}
	t.Fatal("no mobilecoin vector")
}

func caseByID(t *testing.T, id string) testCase {
	t.Helper()
	for _, tc := range loadVectors(t) {
		if tc.ID == id {
			return tc
		}
	}
	t.Fatalf("no vector %q", id)
	return testCase{}
}

func bundleOf(t *testing.T, b []byte) Bundle {
	t.Helper()
	var bd Bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		t.Fatal(err)
	}
	return bd
}

func verifyWithBundle(t *testing.T, tc testCase, bd Bundle) error {
	t.Helper()
	c, err := NewCollateral(bd)
	if err != nil {
		t.Fatalf("collateral: %v", err)
	}
	_, err = tc.verify(t, &Verifier{Source: StaticSource(c)}, tc.at)
	return err
}

func TestWrongCollateral(t *testing.T) {
	sgx := caseByID(t, "phala-sgx-v3")
	sgxOther := caseByID(t, "dcaprs-sgx-v3")
	tdx := caseByID(t, "phala-tdx-v4")

	t.Run("bundle for another platform", func(t *testing.T) {
		// Its PCK CRL comes from the Platform CA, the quote's PCK from the
		// Processor CA.
		err := verifyWithBundle(t, sgx, bundleOf(t, sgxOther.bundle))
		if checkName(err) != "pck_crl" {
			t.Fatalf("got %v, want pck_crl", err)
		}
	})
	t.Run("TCB info for another FMSPC", func(t *testing.T) {
		bd := bundleOf(t, sgx.bundle)
		o := bundleOf(t, sgxOther.bundle)
		bd.TCBInfo, bd.TCBInfoSignature, bd.TCBInfoIssuerChain = o.TCBInfo, o.TCBInfoSignature, o.TCBInfoIssuerChain
		err := verifyWithBundle(t, sgx, bd)
		if checkName(err) != "tcb_info_fmspc" || !strings.Contains(err.Error(), "00606A000000") {
			t.Fatalf("got %v, want tcb_info_fmspc naming 00606A000000", err)
		}
	})
	t.Run("SGX QE identity on a TDX quote", func(t *testing.T) {
		bd := bundleOf(t, tdx.bundle)
		s := bundleOf(t, sgx.bundle)
		bd.QEIdentity, bd.QEIdentitySignature, bd.QEIdentityIssuerChain = s.QEIdentity, s.QEIdentitySignature, s.QEIdentityIssuerChain
		err := verifyWithBundle(t, tdx, bd)
		if checkName(err) != "qe_identity_mismatch" || !strings.Contains(err.Error(), `"TD_QE"`) {
			t.Fatalf("got %v, want qe_identity_mismatch naming TD_QE", err)
		}
	})
	t.Run("TD QE identity on an SGX quote", func(t *testing.T) {
		bd := bundleOf(t, sgx.bundle)
		d := bundleOf(t, tdx.bundle)
		bd.QEIdentity, bd.QEIdentitySignature, bd.QEIdentityIssuerChain = d.QEIdentity, d.QEIdentitySignature, d.QEIdentityIssuerChain
		if err := verifyWithBundle(t, sgx, bd); checkName(err) != "qe_identity_mismatch" {
			t.Fatalf("got %v, want qe_identity_mismatch", err)
		}
	})
	t.Run("TDX TCB info on an SGX quote", func(t *testing.T) {
		bd := bundleOf(t, sgx.bundle)
		d := bundleOf(t, tdx.bundle)
		bd.TCBInfo, bd.TCBInfoSignature, bd.TCBInfoIssuerChain = d.TCBInfo, d.TCBInfoSignature, d.TCBInfoIssuerChain
		if err := verifyWithBundle(t, sgx, bd); checkName(err) != "tcb_info_id" {
			t.Fatalf("got %v, want tcb_info_id", err)
		}
	})
	t.Run("TCB info signature swapped", func(t *testing.T) {
		bd := bundleOf(t, sgx.bundle)
		bd.TCBInfoSignature = bd.QEIdentitySignature
		if err := verifyWithBundle(t, sgx, bd); checkName(err) != "tcb_info_signature" {
			t.Fatalf("got %v, want tcb_info_signature", err)
		}
	})
	t.Run("QE identity signed over other bytes", func(t *testing.T) {
		bd := bundleOf(t, sgx.bundle)
		bd.QEIdentity = strings.Replace(bd.QEIdentity, `"isvprodid":1`, `"isvprodid":1 `, 1)
		if err := verifyWithBundle(t, sgx, bd); checkName(err) != "qe_identity_signature" {
			t.Fatalf("got %v, want qe_identity_signature", err)
		}
	})
	t.Run("root CRL from another bundle era", func(t *testing.T) {
		// A real root CRL, correctly signed, but not current at this time.
		bd := bundleOf(t, sgx.bundle)
		m := bundleOf(t, caseByID(t, "mobilecoin-attestation-v3").bundle)
		bd.RootCACRL = m.RootCACRL
		if err := verifyWithBundle(t, sgx, bd); checkName(err) != "root_crl_expired" {
			t.Fatalf("got %v, want root_crl_expired", err)
		}
	})
	t.Run("PCK CRL signed by the root instead of the PCK CA", func(t *testing.T) {
		bd := bundleOf(t, sgx.bundle)
		bd.PCKCRL = bd.RootCACRL
		if err := verifyWithBundle(t, sgx, bd); checkName(err) != "pck_crl" {
			t.Fatalf("got %v, want pck_crl", err)
		}
	})
	t.Run("evidence platform disagrees", func(t *testing.T) {
		c, _ := ParseBundle(sgx.bundle)
		sgx.Platform = "tdx"
		if _, err := sgx.verify(t, &Verifier{Source: StaticSource(c)}, sgx.at); checkName(err) != "evidence_platform" {
			t.Fatalf("got %v, want evidence_platform", err)
		}
	})
}

// TestTrailingPadding: zero bytes after the signature data are padding.
func TestTrailingPadding(t *testing.T) {
	tc := caseByID(t, "phala-tdx-v4")
	tc.quote = append(bytes.Clone(tc.quote), make([]byte, 1000)...)
	c, err := tc.verify(t, tc.verifier(t), tc.at)
	if err != nil || c.TCBStatus != "UpToDate" {
		t.Fatalf("padded quote: %v %v", c, err)
	}
}

func TestTruncatedQuotes(t *testing.T) {
	for _, tc := range loadVectors(t) {
		q, err := ParseQuote(tc.quote)
		if err != nil {
			t.Fatal(err)
		}
		end := len(q.Signed) + 4 + int(q.SignatureDataLen)
		v := tc.verifier(t)
		for n := 0; n < end; n++ {
			if _, err := ParseQuote(tc.quote[:n]); err == nil {
				t.Fatalf("%s: quote truncated to %d of %d bytes parsed", tc.ID, n, end)
			}
			if n%97 == 0 {
				if _, err := tc.verify(t, v, tc.at); err != nil && tc.Valid {
					t.Fatal(err)
				}
				if _, err := v.Verify(t.Context(), evidence(tc.quote[:n]), optsAt(tc.at)); checkName(err) != "quote_parse" {
					t.Fatalf("%s: truncated to %d: %v, want quote_parse", tc.ID, n, err)
				}
			}
		}
	}
}

func TestUnknownVersions(t *testing.T) {
	tc := caseByID(t, "phala-sgx-v3")
	for _, mut := range []struct {
		name string
		off  int
		val  byte
		want string
	}{
		{"version 2", 0, 2, "unsupported quote version 2"},
		{"version 6", 0, 6, "unsupported quote version 6"},
		{"key type 3", 2, 3, "attestation key type 3"},
		{"tee type on v3", 4, 0x81, "v3 is SGX only"},
	} {
		b := bytes.Clone(tc.quote)
		b[mut.off] = mut.val
		_, err := ParseQuote(b)
		if err == nil || !strings.Contains(err.Error(), mut.want) {
			t.Errorf("%s: %v, want %q", mut.name, err, mut.want)
		}
	}
	td := caseByID(t, "phala-tdx-v4")
	b := bytes.Clone(td.quote)
	b[4] = 0x42
	if _, err := ParseQuote(b); err == nil || !strings.Contains(err.Error(), "unknown TEE type 0x42") {
		t.Errorf("TEE type 0x42: %v", err)
	}
}

func TestQuoteJSON(t *testing.T) {
	for _, tc := range loadVectors(t) {
		q, err := ParseQuote(tc.quote)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{`"qe_vendor_id":"939a7233f79c4ca9940a0db3957f0607"`, `"qe_report":{`, `"pck_chain":["`, `"attestation_key":"`} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: JSON lacks %s", tc.ID, want)
			}
		}
		if tc.MRTD != "" && !strings.Contains(s, fmt.Sprintf(`"mr_td":"%s"`, tc.MRTD)) {
			t.Errorf("%s: JSON lacks mr_td", tc.ID)
		}
		if tc.MREnclave != "" && !strings.Contains(s, fmt.Sprintf(`"mr_enclave":"%s"`, tc.MREnclave)) {
			t.Errorf("%s: JSON lacks mr_enclave", tc.ID)
		}
		if got := q.Platform(); string(got) != tc.Platform {
			t.Errorf("%s: platform %s", tc.ID, got)
		}
	}
}

// TestConcurrentVerify shares one verifier (and its caches) across
// goroutines; run with -race.
func TestConcurrentVerify(t *testing.T) {
	cases := loadVectors(t)
	verifiers := make([]*Verifier, len(cases))
	for i, tc := range cases {
		verifiers[i] = tc.verifier(t)
	}
	errs := make(chan error, 4*len(cases))
	for g := range 4 {
		go func() {
			for i := range cases {
				tc := cases[(i+g)%len(cases)]
				_, err := verifiers[(i+g)%len(cases)].Verify(t.Context(), evidence(tc.quote), optsAt(tc.at))
				if (err == nil) != tc.Valid {
					err = fmt.Errorf("%s: valid=%v, err=%v", tc.ID, tc.Valid, err)
				} else {
					err = nil
				}
				errs <- err
			}
		}()
	}
	for range 4 * len(cases) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestTrailingBytesRefused: zero padding after a quote verifies; one
// non-zero byte after it (covered by no signature) is refused by name and
// offset. Before, both verified.
func TestTrailingBytesRefused(t *testing.T) {
	tc := caseByID(t, "phala-tdx-v4") // published with 70 zero bytes of padding
	v := tc.verifier(t)
	q, err := ParseQuote(tc.quote)
	if err != nil || q.Trailing == 0 {
		t.Fatalf("want a zero-padded vector: %v, %d trailing", err, q.Trailing)
	}
	if _, err := tc.verify(t, v, tc.at); err != nil {
		t.Fatalf("zero padding: %v", err)
	}
	junk := append(bytes.Clone(tc.quote), 0, 0, 1)
	_, err = v.Verify(t.Context(), &attest.Evidence{Platform: attest.PlatformTDX, Data: junk}, optsAt(tc.at))
	want := fmt.Sprintf("quote_parse: non-zero byte at offset %d after the signature data (the quote ends at offset %d", len(tc.quote)+2, q.Length)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want %q…", err, want)
	}
}
