package dcap

import (
	"testing"
)

func FuzzParseBundle(f *testing.F) {
	for _, tc := range loadVectors(f) {
		f.Add(tc.bundle)
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseBundle(b)
		if err != nil {
			return
		}
		if c.TCBInfo == nil || c.QEIdentity == nil || c.PCKCRL == nil || c.RootCRL == nil {
			t.Fatal("bundle parsed with missing parts")
		}
	})
}

// FuzzVerify runs whole verifications of arbitrary quotes against real
// collateral: no input may panic, and any accepted quote must be one of
// the genuine ones (or a padded copy).
func FuzzVerify(f *testing.F) {
	cases := loadVectors(f)
	for _, tc := range cases {
		f.Add(tc.quote, uint8(0))
	}
	verifiers := make([]*Verifier, len(cases))
	for i, tc := range cases {
		verifiers[i] = tc.verifier(f)
	}
	f.Fuzz(func(t *testing.T, quote []byte, which uint8) {
		i := int(which) % len(cases)
		c, err := verifiers[i].Verify(t.Context(), evidence(quote), optsAt(cases[i].at))
		if err != nil {
			if checkName(err) == "" {
				t.Fatalf("error without check name: %v", err)
			}
			return
		}
		// Several cases share collateral, so any genuine quote of the same
		// platform may verify; nothing else may.
		q, _ := ParseQuote(quote)
		for _, tc := range cases {
			orig, _ := ParseQuote(tc.quote)
			if string(q.Signed) == string(orig.Signed) && string(q.Signature) == string(orig.Signature) {
				return
			}
		}
		t.Fatalf("accepted a quote that is not a genuine one: %+v", c)
	})
}
