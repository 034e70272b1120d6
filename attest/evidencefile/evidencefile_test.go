package evidencefile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/internal/shareddata"
)

type vec struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Evidence string `json:"evidence"`
}

func loadVectors(t testing.TB) (string, []vec) {
	p := shareddata.Require(t, "attestation", "vectors.json")
	b, _ := os.ReadFile(p)
	var vs []vec
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p), vs
}

func TestSniffVectors(t *testing.T) {
	dir, vs := loadVectors(t)
	for _, v := range vs {
		b, _ := os.ReadFile(filepath.Join(dir, v.Evidence))
		p, err := Sniff(b)
		if err != nil || string(p) != v.Platform {
			t.Errorf("%s: sniffed %q, %v; want %s", v.ID, p, err, v.Platform)
		}
		// And every vector inspects.
		f, err := Decode(b, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Inspect(f); err != nil {
			t.Errorf("%s: inspect: %v", v.ID, err)
		}
	}
	for _, junk := range [][]byte{nil, []byte("hello"), make([]byte, 2000)} {
		if _, err := Sniff(junk); err == nil {
			t.Errorf("sniffed %d junk bytes", len(junk))
		}
	}
}

func TestContainerRoundTripAndAtomicWrite(t *testing.T) {
	dir, vs := loadVectors(t)
	b, _ := os.ReadFile(filepath.Join(dir, vs[0].Evidence))
	ev := &attest.Evidence{Platform: attest.Platform(vs[0].Platform), Data: b}
	rd := bytes.Repeat([]byte{7}, 64)
	f := New(ev, "gramine", rd, time.Unix(1700000000, 5))
	out := filepath.Join(t.TempDir(), "ev.json")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(out); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Fatalf("temp files left: %d entries", len(ents))
	}
	g, err := Load(out, "")
	if err != nil {
		t.Fatal(err)
	}
	if g.Platform != ev.Platform || !bytes.Equal(g.Data, b) || !bytes.Equal(g.ReportData, rd) || g.Backend != "gramine" || !g.Created.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("round trip: %+v", g)
	}
	if _, err := Load(out, attest.PlatformSNP); err == nil {
		t.Fatal("platform mismatch accepted")
	}
}

func TestContainerRefusals(t *testing.T) {
	good := `{"format":"ppml-evidence","version":1,"platform":"sim","data":"AQID"}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"format":    `{"format":"x","version":1,"platform":"sim","data":"AQID"}`,
		"version":   `{"format":"ppml-evidence","version":2,"platform":"sim","data":"AQID"}`,
		"platform":  `{"format":"ppml-evidence","version":1,"platform":"arm","data":"AQID"}`,
		"no data":   `{"format":"ppml-evidence","version":1,"platform":"sim"}`,
		"unknown":   `{"format":"ppml-evidence","version":1,"platform":"sim","data":"AQID","x":1}`,
		"trailing":  good + `{}`,
		"rd length": `{"format":"ppml-evidence","version":1,"platform":"sim","data":"AQID","report_data":"00"}`,
		"aux":       `{"format":"ppml-evidence","version":1,"platform":"sgx","data":"AQID","aux":"AQID"}`,
		"base64":    `{"format":"ppml-evidence","version":1,"platform":"sim","data":"!!"}`,
	} {
		if _, err := Parse([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "evidence container") {
			t.Errorf("%s: error does not say what: %v", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"format":"ppml-evidence","version":1,"platform":"snp","backend":"tsm","report_data":"` + strings.Repeat("00", 64) + `","data":"AQID","aux":"AQID"}`))
	f.Add([]byte(`{"format":"ppml-evidence","version":1,"platform":"sim","data":"AQID"}`))
	dir, _ := loadVectors(f)
	quote, _ := os.ReadFile(filepath.Join(dir, "tdx", "phala_tdx_v4.quote.bin"))
	withLog, err := New(&attest.Evidence{Platform: attest.PlatformTDX, Data: quote, EventLog: ccelLog(f)}, "tsm", nil, time.Unix(0, 0)).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withLog)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Decode(b, "")
		if err != nil {
			return
		}
		// Whatever decodes can be inspected without panicking, and a
		// container re-encodes to itself.
		_, _ = Inspect(g)
		if IsContainer(b) {
			out, err := g.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			h, err := Parse(out)
			if err != nil {
				t.Fatalf("re-encoded container does not parse: %v", err)
			}
			if h.Platform != g.Platform || !bytes.Equal(h.Data, g.Data) || !bytes.Equal(h.Aux, g.Aux) || !bytes.Equal(h.EventLog, g.EventLog) {
				t.Fatal("container changed in a round trip")
			}
		}
	})
}

func TestInspectSNPWithCertificates(t *testing.T) {
	dir, _ := loadVectors(t)
	report, _ := os.ReadFile(filepath.Join(dir, "snp", "trustee_milan.report.bin"))
	vcek, _ := os.ReadFile(filepath.Join(dir, "snp", "trustee_milan.vcek.der"))
	chain, _ := os.ReadFile(filepath.Join(dir, "common", "amd_ask_ark_milan_vcek.pem"))
	aux, err := snp.TableFromCerts(vcek, chain)
	if err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(&File{Platform: attest.PlatformSNP, Data: report, Aux: aux})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.SNPCerts) != 3 || in.SNPCerts[0].Role != "VCEK" || in.SNPCerts[0].Extensions == nil {
		t.Fatalf("certs %+v", in.SNPCerts)
	}
	ext := in.SNPCerts[0].Extensions
	if ext.ProductName != "Milan-B0" || !bytes.Equal(ext.HwID, in.SNP.ChipID) {
		t.Fatalf("VCEK extensions %+v", ext)
	}
	// The decoded reported TCB equals the VCEK's SPLs (Milan layout, from the VCEK's product).
	if in.SNP.Product != snp.Milan || in.SNP.ReportedTCB.Decoded != ext.TCB {
		t.Fatalf("tcb %+v vs %+v", in.SNP.ReportedTCB, ext.TCB)
	}
	if !in.SNP.PolicySMT || in.SNP.PolicyDebug || in.SNP.SigningKey != "vcek" || in.Verified {
		t.Fatalf("fields %+v", in.SNP)
	}
}

func ccelLog(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open("../ccel/testdata/ccel_ovmf.bin.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEventLogInContainer: a TDX container carries the event log, round
// trips it, and inspect parses and replays it; other platforms may not
// carry one.
func TestEventLogInContainer(t *testing.T) {
	dir, _ := loadVectors(t)
	quote, _ := os.ReadFile(filepath.Join(dir, "tdx", "phala_tdx_v4.quote.bin"))
	log := ccelLog(t)
	f := New(&attest.Evidence{Platform: attest.PlatformTDX, Data: quote, EventLog: log}, "tsm", nil, time.Unix(1700000000, 0))
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil || !bytes.Equal(g.Evidence().EventLog, log) || !strings.Contains(string(b), `"event_log": "`) {
		t.Fatalf("round trip: %v", err)
	}
	in, err := Inspect(g)
	if err != nil || in.EventLog == nil || in.EventLogError != "" {
		t.Fatalf("inspect: %v %+v %s", err, in.EventLog, in.EventLogError)
	}
	el := in.EventLog
	if len(el.Events) != 20 || el.Replay[1].String() != "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6" ||
		el.ReplaysQuote[0] || el.ReplaysQuote[1] {
		t.Fatalf("event log fields: %d events, replay %v, replays quote %v", len(el.Events), el.Replay, el.ReplaysQuote)
	}
	// A broken log is shown as an error next to the quote.
	g.EventLog = log[:100]
	if in, err := Inspect(g); err != nil || in.Quote == nil || !strings.Contains(in.EventLogError, "event log") {
		t.Fatalf("broken log: %v %+v", err, in)
	}
	// Only TDX evidence carries an event log.
	sgxQuote, _ := os.ReadFile(filepath.Join(dir, "sgx", "phala_sgx_v3.quote.bin"))
	b, _ = New(&attest.Evidence{Platform: attest.PlatformSGX, Data: sgxQuote, EventLog: log}, "gramine", nil, time.Now()).Marshal()
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "event_log is only defined for tdx, not sgx") {
		t.Fatalf("sgx with event log: %v", err)
	}
}
