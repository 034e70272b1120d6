package verifier

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/internal/shareddata"
)

func check(err error) string {
	var ce *attest.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return ""
}

func read(t testing.TB, elem ...string) []byte {
	b, err := os.ReadFile(shareddata.Require(t, append([]string{"attestation"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func snpEvidence(t testing.TB) *attest.Evidence {
	aux, err := snp.TableFromCerts(read(t, "snp", "virtee_milan.vcek.der"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.Evidence{Platform: attest.PlatformSNP, Data: read(t, "snp", "virtee_milan.report.bin"), Aux: aux}
}

var snpTime = attest.VerifyOptions{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}

func TestDispatch(t *testing.T) {
	ctx := context.Background()
	simDir := t.TempDir()
	simEv, err := (&sim.Attester{Dir: simDir}).Evidence(ctx, [64]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	simKey, err := sim.LoadPublicKey(filepath.Join(simDir, sim.PlatformPubKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	sgxEv := &attest.Evidence{Platform: attest.PlatformSGX, Data: read(t, "sgx", "phala_sgx_v3.quote.bin")}
	sgxAt := attest.VerifyOptions{Time: time.Date(2025, 7, 19, 10, 1, 17, 0, time.UTC)}

	bare := New(Config{})
	if cl, err := bare.Verify(ctx, snpEvidence(t), snpTime); err != nil || cl.Platform != attest.PlatformSNP {
		t.Fatalf("snp: %v", err)
	}
	if _, err := bare.Verify(ctx, simEv, attest.VerifyOptions{}); check(err) != "sim_platform_key" {
		t.Fatalf("sim without keys: %v", err)
	}
	if _, err := bare.Verify(ctx, sgxEv, sgxAt); check(err) != "collateral" {
		t.Fatalf("sgx without collateral: %v", err)
	}
	if _, err := bare.Verify(ctx, &attest.Evidence{Platform: "arm", Data: []byte{1}}, attest.VerifyOptions{}); check(err) != "platform" {
		t.Fatalf("unknown platform: %v", err)
	}
	// Evidence mislabelled as another platform fails in that platform's parser.
	if _, err := bare.Verify(ctx, &attest.Evidence{Platform: attest.PlatformSNP, Data: sgxEv.Data}, snpTime); err == nil {
		t.Fatal("SGX quote accepted as SNP")
	}

	col, err := dcap.LoadBundle(shareddata.Require(t, "attestation", "sgx", "collateral_00A067110000_2025-06-19_phala.json"))
	if err != nil {
		t.Fatal(err)
	}
	full := New(Config{Collateral: dcap.StaticSource(col), SimKeys: []ed25519.PublicKey{simKey}})
	cl, err := full.Verify(ctx, simEv, attest.VerifyOptions{})
	if err != nil || !cl.Insecure || cl.TEEType != "simulated" {
		t.Fatalf("sim with key: %+v %v", cl, err)
	}
	if cl, err := full.Verify(ctx, sgxEv, sgxAt); err != nil || cl.Platform != attest.PlatformSGX || cl.Insecure {
		t.Fatalf("sgx: %+v %v", cl, err)
	}
	// Simulated evidence relabelled as SGX does not get through the DCAP path.
	if _, err := full.Verify(ctx, &attest.Evidence{Platform: attest.PlatformSGX, Data: simEv.Data}, sgxAt); err == nil {
		t.Fatal("sim evidence accepted as SGX")
	}
}

// lying is a backend that answers for the wrong platform.
type lying struct{ p attest.Platform }

func (l lying) Verify(context.Context, *attest.Evidence, attest.VerifyOptions) (*attest.Claims, error) {
	return &attest.Claims{Platform: l.p}, nil
}

func TestDispatcherGuardsBackends(t *testing.T) {
	v := &Verifier{SNP: lying{attest.PlatformSGX}, Sim: lying{attest.PlatformSim}}
	if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP}, attest.VerifyOptions{}); check(err) != "platform" {
		t.Fatalf("%v", err)
	}
	if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSim}, attest.VerifyOptions{}); check(err) != "platform" {
		t.Fatalf("sim claims without insecure: %v", err)
	}
}

func BenchmarkSNP(b *testing.B) {
	ev := snpEvidence(b)
	v := New(Config{})
	for b.Loop() {
		if _, err := v.Verify(context.Background(), ev, snpTime); err != nil {
			b.Fatal(err)
		}
	}
}
