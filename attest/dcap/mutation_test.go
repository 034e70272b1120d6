package dcap

import (
	"bytes"
	"testing"
)

type region struct {
	name     string
	off, end int
	n        int // positions to flip, spread evenly
}

var masks = []byte{0x01, 0x80, 0xff, 0x02, 0x10, 0x04, 0x40, 0x08}

// spread returns n offsets spread evenly over [off, end).
func spread(off, end, n int) []int {
	size := end - off
	if n > size {
		n = size
	}
	out := make([]int, 0, n)
	for i := range n {
		out = append(out, off+i*size/n)
	}
	return out
}

// quoteRegions locates the signed regions of a quote from its parsed form.
func quoteRegions(t *testing.T, b []byte) []region {
	t.Helper()
	q, err := ParseQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	sig := len(q.Signed) + 4
	qe := bytes.Index(b[sig:], q.QEReportRaw) + sig
	auth := qe + 384 + 64 + 2
	pemStart := bytes.Index(b, []byte("-----BEGIN CERTIFICATE-----"))
	pemEnd := bytes.LastIndex(b, []byte("-----END CERTIFICATE-----")) + len("-----END CERTIFICATE-----")
	if qe < sig || pemStart < 0 {
		t.Fatal("cannot locate quote regions")
	}
	rs := []region{
		{"header", 0, 48, 48},
		{"body", 48, len(q.Signed), 80},
		{"quote signature", sig, sig + 64, 32},
		{"attestation key", sig + 64, sig + 128, 32},
		{"QE report", qe, qe + 384, 80},
		{"QE report signature", qe + 384, qe + 448, 32},
		{"certification data", pemStart, pemEnd, 220},
	}
	if len(q.QEAuthData) > 0 {
		rs = append(rs, region{"QE auth data", auth, auth + len(q.QEAuthData), 16})
	}
	return rs
}

// TestMutations flips single bytes at hundreds of positions spread over
// every signed region of each valid quote and its collateral: every
// mutation must be refused, none may panic.
func TestMutations(t *testing.T) {
	for _, tc := range loadVectors(t) {
		if !tc.Valid {
			continue
		}
		t.Run(tc.ID, func(t *testing.T) {
			v := tc.verifier(t)
			if _, err := tc.verify(t, v, tc.at); err != nil {
				t.Fatal(err)
			}
			count := 0
			for _, r := range quoteRegions(t, tc.quote) {
				for i, p := range spread(r.off, r.end, r.n) {
					m := bytes.Clone(tc.quote)
					m[p] ^= masks[(p+i)%len(masks)]
					c, err := v.Verify(t.Context(), evidence(m), optsAt(tc.at))
					if err == nil {
						t.Errorf("%s: flipped byte %d (%#02x→%#02x) verified: %+v", r.name, p, tc.quote[p], m[p], c)
					} else if checkName(err) == "" {
						t.Errorf("%s: byte %d: error without a check name: %v", r.name, p, err)
					}
					count++
				}
			}
			quoteCount := count

			bd := bundleOf(t, tc.bundle)
			fields := []struct {
				name string
				p    *string
				n    int
			}{
				{"tcb_info", &bd.TCBInfo, 90},
				{"tcb_info_signature", &bd.TCBInfoSignature, 16},
				{"tcb_info_issuer_chain", &bd.TCBInfoIssuerChain, 30},
				{"qe_identity", &bd.QEIdentity, 60},
				{"qe_identity_signature", &bd.QEIdentitySignature, 16},
				{"qe_identity_issuer_chain", &bd.QEIdentityIssuerChain, 20},
				{"pck_crl", &bd.PCKCRL, 30},
				{"pck_crl_issuer_chain", &bd.PCKCRLIssuerChain, 20},
				{"root_ca_crl", &bd.RootCACRL, 30},
			}
			for _, f := range fields {
				orig := *f.p
				for i, p := range spread(0, len(orig), f.n) {
					m := []byte(orig)
					m[p] ^= masks[(p+i)%len(masks)]
					*f.p = string(m)
					c, err := NewCollateral(bd)
					if err == nil {
						var claims any
						claims, err = (&Verifier{Source: StaticSource(c)}).Verify(t.Context(), evidence(tc.quote), optsAt(tc.at))
						if err == nil {
							t.Errorf("%s: flipped byte %d (%q→%q) verified: %+v", f.name, p, orig[p], m[p], claims)
						}
					}
					count++
				}
				*f.p = orig
			}
			if quoteCount < 500 {
				t.Errorf("only %d quote positions flipped", quoteCount)
			}
			t.Logf("%d mutations (%d in the quote), all refused", count, quoteCount)
		})
	}
}
