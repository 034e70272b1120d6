package tsm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/internal/shareddata"
)

// fakeKernel plays configfs-tsm over a temp dir: mkdir populates the
// attributes, a write to inblob bumps generation and produces outblob (the
// real evidence from the shared test data) and auxblob.
type fakeKernel struct {
	t        *testing.T
	provider string
	out, aux []byte
	// extraWrites simulates another process writing attributes between our
	// write and our reads.
	extraWrites int
	made        []string
	removed     []string
}

func (k *fakeKernel) Mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	k.made = append(k.made, dir)
	for name, v := range map[string]string{"provider": k.provider + "\n", "generation": "0\n", "inblob": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (k *fakeKernel) Rmdir(dir string) error {
	k.removed = append(k.removed, dir)
	return os.RemoveAll(dir)
}

func (k *fakeKernel) Wrote(path string) {
	dir := filepath.Dir(path)
	b, _ := os.ReadFile(filepath.Join(dir, "generation"))
	g, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	g += 1 + k.extraWrites
	os.WriteFile(filepath.Join(dir, "generation"), []byte(strconv.Itoa(g)+"\n"), 0o600)
	if filepath.Base(path) == "inblob" {
		os.WriteFile(filepath.Join(dir, "outblob"), k.out, 0o600)
		if k.aux != nil {
			os.WriteFile(filepath.Join(dir, "auxblob"), k.aux, 0o600)
		}
	}
}

func readShared(t *testing.T, elem ...string) []byte {
	b, err := os.ReadFile(shareddata.Require(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func snpSetup(t *testing.T) (*fakeKernel, [64]byte) {
	report := readShared(t, "attestation", "snp", "trustee_milan.report.bin")
	vcek := readShared(t, "attestation", "snp", "trustee_milan.vcek.der")
	aux, err := snp.TableFromCerts(vcek, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], report[0x50:0x90])
	return &fakeKernel{t: t, provider: "sev_guest", out: report, aux: aux}, rd
}

func TestSNPEvidence(t *testing.T) {
	k, rd := snpSetup(t)
	root := t.TempDir()
	a := &Attester{Root: root, Provider: "sev_guest", kernel: k}
	ev, err := a.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Platform != attest.PlatformSNP || !bytes.Equal(ev.Data, k.out) || !bytes.Equal(ev.Aux, k.aux) {
		t.Fatal("evidence is not the kernel's outblob/auxblob")
	}
	tab, err := snp.ParseCertTable(ev.Aux)
	if err != nil || tab.Get(snp.GUIDVCEK) == nil {
		t.Fatalf("auxblob has no VCEK: %v", err)
	}
	if len(k.made) != 1 || len(k.removed) != 1 || k.made[0] != k.removed[0] {
		t.Fatalf("report dir not removed: made %v removed %v", k.made, k.removed)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left %d entries", len(ents))
	}
}

func TestTDXEvidence(t *testing.T) {
	for _, f := range []string{"phala_tdx_v4.quote.bin", "gotdx_v5_sample.quote.bin"} {
		q := readShared(t, "attestation", "tdx", f)
		off := 48 + 520
		if q[0] == 5 {
			off += 6
		}
		var rd [64]byte
		copy(rd[:], q[off:])
		k := &fakeKernel{t: t, provider: "tdx_guest", out: q}
		ev, err := (&Attester{Root: t.TempDir(), kernel: k}).Evidence(context.Background(), rd)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if ev.Platform != attest.PlatformTDX || ev.Aux != nil {
			t.Fatalf("%s: %+v", f, ev.Platform)
		}
		// Another report data is caught by the echo check.
		rd[0] ^= 1
		if _, err := (&Attester{Root: t.TempDir(), kernel: k}).Evidence(context.Background(), rd); err == nil {
			t.Fatalf("%s: report data mismatch not caught", f)
		}
	}
}

func TestGenerationRace(t *testing.T) {
	k, rd := snpSetup(t)
	k.extraWrites = 1
	_, err := (&Attester{Root: t.TempDir(), kernel: k}).Evidence(context.Background(), rd)
	if !errors.Is(err, ErrGenerationRace) {
		t.Fatalf("got %v, want generation race", err)
	}
	if len(k.removed) != 1 {
		t.Fatal("report dir not removed after failure")
	}
}

func TestProviderChecks(t *testing.T) {
	k, rd := snpSetup(t)
	k.provider = "arm_cca_guest"
	if _, err := (&Attester{Root: t.TempDir(), kernel: k}).Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "arm_cca_guest") {
		t.Errorf("unknown provider: %v", err)
	}
	k.provider = "sev_guest"
	if _, err := (&Attester{Root: t.TempDir(), Provider: "tdx_guest", kernel: k}).Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "want \"tdx_guest\"") {
		t.Errorf("provider mismatch: %v", err)
	}
}

func TestNoConfigfs(t *testing.T) {
	_, err := (&Attester{Root: filepath.Join(t.TempDir(), "missing")}).Evidence(context.Background(), [64]byte{})
	if err == nil || !strings.Contains(err.Error(), "create report") {
		t.Fatalf("%v", err)
	}
}
