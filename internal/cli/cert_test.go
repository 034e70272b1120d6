package cli

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/workload/workloadtest"
)

// TestCertCommands drives ppml cert against a real key service: pin the
// CA, set, read and change a certificate policy, list what was issued,
// read the revocation list, and read the policy's audit trail.
func TestCertCommands(t *testing.T) {
	cl := workloadtest.New(t)
	t.Setenv("PPML_SERVER", cl.KMS.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", cl.KMS.Fingerprint)
	t.Setenv("PPML_TOKEN", "")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "deployment-ca.pem")
	code, out, errs := runKMS(t, "", "cert", "ca", "-o", caFile)
	fp := fmt.Sprintf("sha256:%x", sha256.Sum256(cl.CA.Raw))
	if code != 0 || !strings.Contains(out, fp) {
		t.Fatal(out, errs)
	}
	b, _ := os.ReadFile(caFile)
	if ca, err := client.ParseCAPEM(b); err != nil || !ca.Equal(cl.CA) {
		t.Fatalf("pinned CA: %v", err)
	}

	// The owner (alice) manages the policy workloadtest created.
	tok := ownerToken(t, cl)
	t.Setenv("PPML_TOKEN", tok)
	cert := cl.Issue(t, workloadtest.Role)
	pol := filepath.Join(dir, "cert-policy.yaml")
	os.WriteFile(pol, cl.Sim.Policy("jobs: [sha256:"+fmt.Sprintf("%x", cl.JobDigest)+"]\ncertificate:\n  roles: ["+workloadtest.Role+"]\n  ttl: 30m\n"), 0o600)
	if code, out, errs := runKMS(t, "", "cert", "policy", "set", cl.PolicyName, pol); code != 0 || !strings.Contains(out, "version 2 set; 1 certificates of earlier versions revoked") {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "cert", "policy", "get", cl.PolicyName); code != 0 || !strings.Contains(out, "ttl: 30m") {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "cert", "policy", "list"); code != 0 || !strings.Contains(out, cl.PolicyName+" version 2") {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "cert", "list", "--policy", cl.PolicyName); code != 0 || !strings.Contains(out, cert.Issued.Serial+" "+cl.PolicyName+" v1") || !strings.Contains(out, "REVOKED") {
		t.Fatal(out, errs)
	}
	code, out, errs = runKMS(t, "", "cert", "crl", "--deployment-ca", caFile, "--json")
	var crl struct{ Revoked []struct{ Serial string } }
	if code != 0 || json.Unmarshal([]byte(out), &crl) != nil || len(crl.Revoked) != 1 || crl.Revoked[0].Serial != cert.Issued.Serial {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "audit", "list", "--key", "cert-policy:"+cl.PolicyName); code != 0 || !strings.Contains(out, "cert_issue") || !strings.Contains(out, "cert_policy_set") {
		t.Fatal(out, errs)
	}

	// Bad input: the error names the file and the field; nothing changes.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, cl.Sim.Policy("certificate:\n  roles: [Worker]\n"), 0o600)
	if code, _, errs := runKMS(t, "", "cert", "policy", "set", cl.PolicyName, bad); code == 0 || !strings.Contains(errs, bad) || !strings.Contains(errs, "certificate.roles[0]") {
		t.Fatalf("bad policy: %d %s", code, errs)
	}
	if code, _, errs := runKMS(t, "", "cert", "crl"); code != 2 || !strings.Contains(errs, "--deployment-ca") {
		t.Fatalf("crl without the CA: %d %s", code, errs)
	}
	if code, out, errs := runKMS(t, "", "cert", "policy", "delete", cl.PolicyName); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatal(out, errs)
	}
}

// ownerToken issues another token of the cluster's owner tenant.
func ownerToken(t *testing.T, cl *workloadtest.Cluster) string {
	tok, err := cl.KMS.Admin.CreateToken(context.Background(), "alice", "cli test")
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}
