package attest

import (
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Hex is the one hex byte-string type of claims, quotes, policies, audit
// entries and Intel collateral: its forms are part of several formats.
func TestHexForms(t *testing.T) {
	h := Hex{0xab, 0x01, 0xff}
	j, err := json.Marshal(struct {
		H Hex `json:"h"`
	}{h})
	if err != nil || string(j) != `{"h":"ab01ff"}` {
		t.Fatalf("JSON %s %v", j, err)
	}
	y, err := yaml.Marshal(struct {
		H Hex `yaml:"h"`
	}{h})
	if err != nil || string(y) != "h: ab01ff\n" {
		t.Fatalf("YAML %q %v", y, err)
	}
	// Either case is accepted on input (Intel writes upper case).
	var back Hex
	if err := json.Unmarshal([]byte(`"AB01FF"`), &back); err != nil || back.String() != "ab01ff" {
		t.Fatalf("upper-case JSON: %x %v", back, err)
	}
	var doc struct {
		H Hex `yaml:"h"`
	}
	if err := yaml.Unmarshal([]byte("h: Ab01fF\n"), &doc); err != nil || doc.H.String() != "ab01ff" {
		t.Fatalf("mixed-case YAML: %x %v", doc.H, err)
	}
	// Errors name the value, and in YAML the line.
	if err := json.Unmarshal([]byte(`"xyz"`), &back); err == nil || !strings.Contains(err.Error(), `"xyz" is not hex`) {
		t.Fatalf("bad JSON hex: %v", err)
	}
	if err := yaml.Unmarshal([]byte("a: 1\nh: xyz\n"), &doc); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad YAML hex: %v", err)
	}
	if err := yaml.Unmarshal([]byte("h: [1]\n"), &doc); err == nil || !strings.Contains(err.Error(), "want a hex string") {
		t.Fatalf("YAML list as hex: %v", err)
	}
}
