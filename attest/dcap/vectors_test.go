package dcap

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/internal/shareddata"
)

type vector struct {
	ID         string   `json:"id"`
	Platform   string   `json:"platform"`
	Evidence   string   `json:"evidence"`
	Collateral string   `json:"collateral"`
	At         string   `json:"at"`
	Valid      bool     `json:"valid"`
	TCBStatus  string   `json:"tcb_status"`
	Advisories []string `json:"advisories"`
	MREnclave  string   `json:"mrenclave"`
	MRSigner   string   `json:"mrsigner"`
	MRTD       string   `json:"mrtd"`
	ReportData string   `json:"report_data"`
}

// loadVectors returns the SGX and TDX cases of the shared vectors with their
// quote bytes and parsed collateral.
func loadVectors(t testing.TB) []testCase {
	t.Helper()
	path := shareddata.Require(t, "attestation", "vectors.json")
	dir := filepath.Dir(path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	var out []testCase
	for _, v := range vs {
		if v.Platform != "sgx" && v.Platform != "tdx" {
			continue
		}
		q, err := os.ReadFile(filepath.Join(dir, v.Evidence))
		if err != nil {
			t.Fatal(err)
		}
		cb, err := os.ReadFile(filepath.Join(dir, v.Collateral))
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, v.At)
		if err != nil {
			t.Fatalf("%s: at: %v", v.ID, err)
		}
		tc := testCase{vector: v, quote: q, bundle: cb, at: at}
		// A vector may carry bytes after the quote. go-tdx-guest appended
		// "extra bytes(only for testing purpose)" to a real quote; the
		// verifier refuses non-zero trailing bytes, so such a case is
		// checked twice: as published (refused, naming the offset) and as
		// Intel's quoting enclave produced it (the vector's verdict).
		if pq, err := ParseQuote(q); err == nil && pq.TrailingNonZero != nil {
			tc.raw, tc.junkAt = q, *pq.TrailingNonZero
			tc.quote = q[:pq.Length]
		}
		out = append(out, tc)
	}
	if len(out) < 8 {
		t.Fatalf("only %d SGX/TDX vectors", len(out))
	}
	return out
}

type testCase struct {
	vector
	quote  []byte // the quote, without non-zero bytes a publisher appended
	bundle []byte
	at     time.Time
	raw    []byte // the file as published, when it has non-zero trailing bytes
	junkAt int    // offset of the first of them
}

func (tc testCase) verify(t testing.TB, v *Verifier, at time.Time) (*attest.Claims, error) {
	t.Helper()
	return v.Verify(context.Background(), &attest.Evidence{Platform: attest.Platform(tc.Platform), Data: tc.quote}, attest.VerifyOptions{Time: at})
}

func (tc testCase) verifier(t testing.TB) *Verifier {
	t.Helper()
	c, err := ParseBundle(tc.bundle)
	if err != nil {
		t.Fatalf("%s: bundle: %v", tc.ID, err)
	}
	return &Verifier{Source: StaticSource(c)}
}

func checkName(err error) string {
	var ce *attest.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return ""
}

func TestVectors(t *testing.T) {
	for _, tc := range loadVectors(t) {
		t.Run(tc.ID, func(t *testing.T) {
			v := tc.verifier(t)
			if tc.raw != nil {
				_, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.Platform(tc.Platform), Data: tc.raw}, attest.VerifyOptions{Time: tc.at})
				want := fmt.Sprintf("non-zero byte at offset %d after the signature data", tc.junkAt)
				if checkName(err) != "quote_parse" || !strings.Contains(err.Error(), want) {
					t.Fatalf("as published, with non-zero trailing bytes: %v; want quote_parse naming offset %d", err, tc.junkAt)
				}
				t.Logf("as published: %v", err)
			}
			c, err := tc.verify(t, v, tc.at)
			if !tc.Valid {
				if err == nil {
					t.Fatalf("verified, want invalid; claims %+v", c)
				}
				if checkName(err) == "" {
					t.Fatalf("error is not a CheckError: %v", err)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if c.TCBStatus != tc.TCBStatus {
				t.Errorf("tcb status %q, want %q", c.TCBStatus, tc.TCBStatus)
			}
			if !slices.Equal(c.Advisories, tc.Advisories) {
				t.Errorf("advisories %v, want %v", c.Advisories, tc.Advisories)
			}
			eq := func(name string, got attest.Hex, want string) {
				if want == "" {
					return
				}
				if hex.EncodeToString(got) != want {
					t.Errorf("%s %x, want %s", name, []byte(got), want)
				}
			}
			eq("report_data", c.ReportData, tc.ReportData)
			eq("mrenclave", c.MREnclave, tc.MREnclave)
			eq("mrsigner", c.MRSigner, tc.MRSigner)
			eq("mrtd", c.MRTD, tc.MRTD)
			if string(c.Platform) != tc.Platform {
				t.Errorf("platform %q, want %q", c.Platform, tc.Platform)
			}
			t.Logf("%s %s adv=%v date=%s window=[%s, %s]", c.TEEType, c.TCBStatus, c.Advisories, c.TCBDate.Format(time.DateOnly), c.CollateralNotBefore, c.CollateralNotAfter)
		})
	}
}

func evidence(b []byte) *attest.Evidence { return &attest.Evidence{Data: b} }

func optsAt(at time.Time) attest.VerifyOptions { return attest.VerifyOptions{Time: at} }
