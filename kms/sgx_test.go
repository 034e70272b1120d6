package kms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/internal/shareddata"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

// TestRealSGXQuote sends a real SGX quote (shared test data, collateral
// from its day) through the release path: the DCAP verifier accepts it, and
// the release is refused because its report_data binds someone else's
// data — which is exactly what stops a replayed quote. The denial is
// audited with the verified MRENCLAVE.
func TestRealSGXQuote(t *testing.T) {
	e, alice, runner, req := sgxSetup(t)
	ctx := context.Background()
	_, err := runner.ReleaseRaw(ctx, req)
	if got := denialRule(t, err); got != api.RuleReportData {
		t.Fatalf("denied by %q, want report_data: %v", got, err)
	}
	if err := e.Core().FlushRefusals(); err != nil {
		t.Fatal(err)
	}
	es, err := e.admin.AuditTenantList(ctx, "runner", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if last.Type != audit.TypeRefusals || last.Rule != api.RuleReportData || !strings.Contains(last.Reason, "1 requests naming 1 keys") {
		t.Fatalf("refusal summary %+v", last)
	}
	// Nothing on the key's trail: evidence bound to another request says
	// nothing about this key.
	ks, _ := alice.AuditList(ctx, "alice/k", 0, 0)
	if ks[len(ks)-1].Type == audit.TypeDenial {
		t.Fatalf("a report_data refusal on the key's trail: %+v", ks[len(ks)-1])
	}
}

// BenchmarkReleaseSGXQuote measures release attempts carrying a real SGX
// quote: full DCAP verification (collateral in memory) and the audited
// denial at report_data, since no fresh quote can bind this benchmark's
// nonce without SGX hardware. It bounds what real-SGX releases cost.
func BenchmarkReleaseSGXQuote(b *testing.B) {
	_, _, runner, req := sgxSetup(b)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch, err := runner.Challenge(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			r := *req
			r.Nonce = ch.Nonce
			if _, err := runner.ReleaseRaw(ctx, &r); err == nil {
				b.Error("released")
				return
			}
		}
	})
}

const sgxMREnclave = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"

func sgxSetup(t testing.TB) (*testEnv, *client.Client, *client.Client, *api.ReleaseRequest) {
	path := shareddata.Require(t, "attestation", "vectors.json")
	dir := filepath.Dir(path)
	var vs []struct{ ID, Evidence, Collateral, At, MREnclave string }
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	var id, ev, col, at, mre string
	for _, v := range vs {
		if v.ID == "phala-sgx-v3" {
			id, ev, col, at, mre = v.ID, v.Evidence, v.Collateral, v.At, v.MREnclave
		}
	}
	if id == "" {
		t.Fatal("vector phala-sgx-v3 missing")
	}
	quote, err := os.ReadFile(filepath.Join(dir, ev))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := dcap.LoadBundle(filepath.Join(dir, col))
	if err != nil {
		t.Fatal(err)
	}
	when, _ := time.Parse(time.RFC3339, at)
	e := startServer(t, t.TempDir(), kms.Config{Collateral: dcap.StaticSource(bundle), Now: func() time.Time { return when }})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	if mre != sgxMREnclave {
		t.Fatalf("vector mrenclave %s", mre)
	}
	if _, err := alice.SetPolicy(ctx, "alice/k", []byte("version: 1\nplatforms:\n  sgx:\n    measurements: ["+mre+"]\n    tcb_statuses: [ConfigurationAndSWHardeningNeeded]\n    allowed_advisories: [INTEL-SA-00289, INTEL-SA-00615]\n")); err != nil {
		t.Fatal(err)
	}
	d, err := alice.GenerateDataKey(ctx, "alice/k", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := runner.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: attest.Evidence{Platform: attest.PlatformSGX, Data: quote},
		PublicKey: bytes.Repeat([]byte{9}, 32), Manifest: manifest, Keys: []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: d.Wrapped}}}
	return e, alice, runner, req
}
