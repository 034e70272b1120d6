package cli_test

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttestEventLog: a raw TDX quote verified with --event-log reports
// which RTMRs the log accounts for. The shared quote and log come from
// different TDs: only RTMR3, zero in both, replays, and it has no events,
// so no event is vouched for. A malformed log makes the evidence invalid;
// inspect replays the log.
func TestAttestEventLog(t *testing.T) {
	dir, vs := vectors(t)
	var at string
	for _, v := range vs {
		if v.ID == "phala-tdx-v4" {
			at = *v.At
		}
	}
	f, err := os.Open(filepath.Join("..", "..", "attest", "ccel", "testdata", "ccel_grub.bin.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(z)
	tmp := t.TempDir()
	logPath, badPath := filepath.Join(tmp, "CCEL"), filepath.Join(tmp, "CCEL.bad")
	os.WriteFile(logPath, log, 0o644)
	os.WriteFile(badPath, log[:200], 0o644)
	quote := filepath.Join(dir, "tdx", "phala_tdx_v4.quote.bin")
	args := []string{"attest", "verify", "--json", "--evidence", quote, "--collateral", filepath.Join(dir, "tdx", "collateral_B0C06F000000_2025-06-19_phala.json"), "--at", at}

	out, code := runMain(t, append(args, "--event-log", logPath)...)
	var r struct {
		Valid  bool
		Claims struct {
			EventLog *struct {
				Replayed   []int `json:"replayed_rtmrs"`
				Unreplayed []int `json:"unreplayed_rtmrs"`
				Events     []any `json:"events"`
			} `json:"event_log"`
			TDAttributes struct{ Flags []string } `json:"td_attributes"`
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Valid || r.Claims.EventLog == nil {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	if el := r.Claims.EventLog; fmt.Sprint(el.Replayed, el.Unreplayed) != "[3] [0 1 2]" || len(el.Events) != 0 || strings.Join(r.Claims.TDAttributes.Flags, ",") != "SEPT_VE_DISABLE" {
		t.Fatalf("claims %+v", r.Claims)
	}

	out, code = runMain(t, append(args, "--event-log", badPath)...)
	if r := decode(t, out); code != 1 || r.Check != "event_log" || !strings.Contains(r.Error, "event log:") {
		t.Fatalf("malformed log: exit %d %+v", code, r)
	}

	out, code = runMain(t, "attest", "inspect", "--event-log", logPath, quote)
	if code != 0 || !strings.Contains(out, "event_log.replay[1]: 6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670") ||
		!strings.Contains(out, "event_log.events[33].description: LOADED_IMAGE::LoadOptions") {
		t.Fatalf("inspect: exit %d\n%s", code, out)
	}
}
