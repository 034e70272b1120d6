package kms_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/attest/snp/kds"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/internal/shareddata"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
)

// TestRealSNPReportWithoutVCEK sends a real SEV-SNP report with no
// certificate table (configfs-tsm's auxblob was empty) through the release
// path. With a certificate source configured (here an offline bundle), the
// key service finds the VCEK, the report verifies, and the release is
// refused only because its report_data binds someone else's data (summed
// into the runner's refusal summary, like every refusal before any key is
// looked at). Without one, the
// evidence is refused at the missing VCEK.
func TestRealSNPReportWithoutVCEK(t *testing.T) {
	dir := filepath.Dir(shareddata.Require(t, "attestation", "vectors.json"))
	report, err := os.ReadFile(filepath.Join(dir, "snp", "trustee_milan.report.bin"))
	if err != nil {
		t.Fatal(err)
	}
	vcek, err := os.ReadFile(filepath.Join(dir, "snp", "trustee_milan.vcek.der"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(vcek)
	if err != nil {
		t.Fatal(err)
	}
	when := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	rep, err := snp.ParseReport(report)
	if err != nil {
		t.Fatal(err)
	}
	measurement := hex.EncodeToString(rep.Measurement[:])
	bundleDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundleDir, "vcek.der"), vcek, 0o644); err != nil {
		t.Fatal(err)
	}
	bundle, err := kds.LoadBundle(bundleDir)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		certs snp.CertSource
		rule  string
	}{
		{bundle, api.RuleReportData},
		{nil, "attestation:vcek_missing"},
	} {
		e := startServer(t, t.TempDir(), kms.Config{SNPCerts: tc.certs, Now: func() time.Time { return when }})
		ctx := context.Background()
		alice, _ := e.party("alice", api.RoleOwner)
		runner, _ := e.party("runner", api.RoleRunner)
		if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SetPolicy(ctx, "alice/k", []byte("version: 1\nplatforms:\n  snp:\n    measurements: ["+measurement+"]\n")); err != nil {
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
		req := &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: attest.Evidence{Platform: attest.PlatformSNP, Data: report},
			PublicKey: bytes.Repeat([]byte{9}, 32), Manifest: manifest, Keys: []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: d.Wrapped}}}
		_, err = runner.ReleaseRaw(ctx, req)
		if got := denialRule(t, err); got != tc.rule {
			t.Fatalf("certificate source %T: denied by %q, want %q: %v", tc.certs, got, tc.rule, err)
		}
		if tc.certs == nil {
			continue
		}
		// Evidence bound to another request is refused before any key is
		// looked at: no entry on the key's trail, one summary on the
		// runner's (docs/formats/audit-log.md, refusals).
		es, err := alice.AuditList(ctx, "alice/k", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if last := es[len(es)-1]; last.Type != audit.TypeDataKey {
			t.Fatalf("the refused release is on the key's trail: %+v", last)
		}
		if err := e.Core().FlushRefusals(); err != nil {
			t.Fatal(err)
		}
		rs, err := e.admin.AuditTenantList(ctx, "runner", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if last := rs[len(rs)-1]; last.Type != audit.TypeRefusals || last.Rule != api.RuleReportData || !strings.HasPrefix(last.Reason, "1 requests naming 1 keys refused") {
			t.Fatalf("refusal summary %+v", last)
		}
	}
}
