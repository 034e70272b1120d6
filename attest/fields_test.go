package attest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestU64JSON(t *testing.T) {
	const big = 0x7300000000000803 // a Milan TCB_VERSION: above 2^53
	b, _ := json.Marshal(U64(big))
	if string(b) != `"0x7300000000000803"` {
		t.Fatalf("marshal %s", b)
	}
	for _, in := range []string{`"0x7300000000000803"`, `"0X7300000000000803"`, `"8286623314361714691"`, `8286623314361714691`} {
		var v U64
		if err := json.Unmarshal([]byte(in), &v); err != nil || v != big {
			t.Errorf("%s: %#x %v", in, uint64(v), err)
		}
	}
	for _, in := range []string{`"0x"`, `"-1"`, `1.5`, `"18446744073709551616"`, `"abc"`, `true`, `"0x1_0"`} {
		var v U64
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("%s accepted as %#x", in, uint64(v))
		}
	}
}

// TestOldClaimsStillRead: claims written before reported_tcb and
// guest_policy became objects carried bare numbers; a reader of old output
// still gets the raw values.
func TestOldClaimsStillRead(t *testing.T) {
	var c Claims
	old := `{"platform":"snp","reported_tcb":8286623314361714691,"guest_policy":196639,"vmpl":0}`
	if err := json.Unmarshal([]byte(old), &c); err != nil {
		t.Fatal(err)
	}
	if c.ReportedTCB.Raw != 0x7300000000000803 || !c.ReportedTCB.Undecoded || c.GuestPolicy.Raw != 0x3001f ||
		c.GuestPolicy.ABIMinor != 0x1f || strings.Join(c.GuestPolicy.Flags, ",") != "SMT,RESERVED_1" || c.VMPL == nil || *c.VMPL != 0 {
		t.Fatalf("%+v %+v %+v", c, c.ReportedTCB, c.GuestPolicy)
	}
	// And the new form round-trips.
	b, _ := json.Marshal(&c)
	var d Claims
	if err := json.Unmarshal(b, &d); err != nil || d.ReportedTCB.Raw != c.ReportedTCB.Raw || d.GuestPolicy.Raw != c.GuestPolicy.Raw {
		t.Fatalf("round trip %s: %v", b, err)
	}
}

func TestSNPFirmwareVersion(t *testing.T) {
	v := func(a, b, c uint8) SNPFirmwareVersion { return SNPFirmwareVersion{a, b, c} }
	for in, want := range map[string]SNPFirmwareVersion{"1.55.21": v(1, 55, 21), "1.55": v(1, 55, 0), "0.0.0": v(0, 0, 0), "255.255.255": v(255, 255, 255), "1.0.9": v(1, 0, 9)} {
		if got, err := ParseSNPFirmwareVersion(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "1", "1.", ".1", "1..2", "1.2.3.4", "1.256", "01.2", "1.02.3", "+1.2", "-1.2", "1.2 ", " 1.2", "0x1.2", "1.2.x", "1,2,3"} {
		if got, err := ParseSNPFirmwareVersion(in); err == nil {
			t.Errorf("%q accepted as %v", in, got)
		} else if !strings.Contains(err.Error(), "is not a firmware version major.minor.build") {
			t.Errorf("%q: %v", in, err)
		}
	}
	// Numbers, not text: 1.9 < 1.55, and major before minor before build.
	order := []SNPFirmwareVersion{v(0, 255, 255), v(1, 0, 0), v(1, 9, 255), v(1, 55, 0), v(1, 55, 21), v(1, 57, 1), v(2, 0, 0)}
	for i := range order {
		for j := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := order[i].Compare(order[j]); got != want {
				t.Errorf("%s vs %s: %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	// JSON: an object; the string claims carried before still reads.
	b, _ := json.Marshal(v(1, 55, 21))
	if string(b) != `{"major":1,"minor":55,"build":21}` {
		t.Fatalf("%s", b)
	}
	var c Claims
	if err := json.Unmarshal([]byte(`{"platform":"snp","firmware_version":"1.55.21","committed_firmware_version":{"major":1,"minor":51,"build":3}}`), &c); err != nil {
		t.Fatal(err)
	}
	if *c.FirmwareVersion != v(1, 55, 21) || *c.CommittedFirmwareVersion != v(1, 51, 3) {
		t.Fatalf("%v %v", c.FirmwareVersion, c.CommittedFirmwareVersion)
	}
	for _, bad := range []string{`"1.x"`, `{"major":256}`, `1`, `{"major":"1"}`} {
		var x SNPFirmwareVersion
		if err := json.Unmarshal([]byte(bad), &x); err == nil {
			t.Errorf("%s accepted as %v", bad, x)
		}
	}
}

func TestBitNames(t *testing.T) {
	f := TDAttributeBits.Flags(1<<28 | 1<<63 | 1<<40)
	if got := strings.Join(f.Flags, ","); got != "SEPT_VE_DISABLE,BIT40,PERFMON" || f.Raw.String() != "0x8000010010000000" {
		t.Fatalf("%s %s", got, f.Raw)
	}
	for name, want := range map[string]int{"DEBUG": 0, "SEPT_VE_DISABLE": 28, "BIT40": 40, "BIT0": 0} {
		if i, ok := TDAttributeBits.Bit(name); !ok || i != want {
			t.Errorf("%s: %d %v", name, i, ok)
		}
	}
	for _, bad := range []string{"debug", "BIT64", "BIT-1", "BIT01", "BIT", ""} {
		if _, ok := TDAttributeBits.Bit(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzClaimsJSON: claims arrive as JSON in release responses; whatever
// decodes re-encodes to JSON that decodes to the same claims, with every
// number exact in a double.
func FuzzClaimsJSON(f *testing.F) {
	f.Add([]byte(`{"platform":"snp","reported_tcb":8286623314361714691,"guest_policy":196639,"vmpl":0}`))
	f.Add([]byte(`{"platform":"snp","reported_tcb":{"raw":"0x7300000000000803","bootloader":3,"microcode":115,"fmc":1},"guest_policy":{"raw":"0x30000","flags":["SMT"]}}`))
	f.Add([]byte(`{"platform":"snp","firmware_version":"1.55.21","committed_firmware_version":{"major":1,"minor":51,"build":3}}`))
	f.Add([]byte(`{"platform":"tdx","td_attributes":{"raw":"0x0000000010000000","flags":["SEPT_VE_DISABLE"]},"event_log":{"replayed_rtmrs":[0],"events":[{"rtmr":0,"type":"EV_IPL","digest":"00"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Claims
		if json.Unmarshal(b, &c) != nil {
			return
		}
		out, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		var d Claims
		if err := json.Unmarshal(out, &d); err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out)
		}
		again, _ := json.Marshal(&d)
		if string(again) != string(out) {
			t.Fatalf("not stable:\n%s\n%s", out, again)
		}
	})
}
