package release

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/internal/shareddata"
)

func TestRunReleases(t *testing.T) {
	r, err := Run(context.Background(), Options{Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.Releases == 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
		t.Fatalf("%+v", r)
	}
}

func TestRunSGXQuote(t *testing.T) {
	dir := filepath.Dir(shareddata.Require(t, "attestation", "vectors.json"))
	q, err := os.ReadFile(filepath.Join(dir, "sgx", "phala_sgx_v3.quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	col, err := dcap.LoadBundle(filepath.Join(dir, "sgx", "collateral_00A067110000_2025-06-19_phala.json"))
	if err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, "2025-07-19T10:01:17Z")
	r, err := Run(context.Background(), Options{Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Concurrency: 2,
		SGX: &SGXInput{Quote: q, Collateral: dcap.StaticSource(col), At: at}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.Releases == 0 {
		t.Fatalf("%+v", r)
	}
}
