package api

import (
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
)

// The key service and envelope headers share one key-name grammar
// (envelope.CheckKeyName): a name one side takes and the other refuses
// would make a key whose files cannot be released, or a header naming a key
// that cannot exist. Every name here must be refused by both: by the
// request checks of the key service and by the kms:// reference parser.
func TestKeyNamesBothSidesRefuse(t *testing.T) {
	refused := map[string]string{
		"empty":                  "",
		"parent segment":         "a/..",
		"parent first":           "../a",
		"parent in the middle":   "a/../b",
		"dot segment":            "a/./b",
		"only dot":               ".",
		"only dot dot":           "..",
		"leading slash":          "/a",
		"trailing slash":         "a/",
		"double slash":           "a//b",
		"NUL":                    "a\x00b",
		"newline":                "a\nb",
		"escape":                 "a\x1b[31mred",
		"DEL":                    "a\x7f",
		"space":                  "a b",
		"backslash":              `a\..\b`,
		"at sign":                "a@x",
		"colon":                  "a:b",
		"percent-encoded parent": "%2e%2e",
		"non-ASCII":              "schlüssel",
		"too long":               strings.Repeat("k", envelope.MaxKeyNameLen+1),
		"too long in segments":   strings.Repeat("a/", envelope.MaxKeyNameLen/2) + "a",
	}
	for what, name := range refused {
		t.Run(what, func(t *testing.T) {
			if envelope.ValidKeyName(name) {
				t.Errorf("envelope.ValidKeyName(%q) = true", name)
			}
			if _, err := envelope.ParseKeyRef("kms://kms.example/" + name); err == nil {
				t.Errorf("ParseKeyRef accepted key name %q", name)
			}
			for req, check := range map[string]interface{ Check() error }{
				"create key": &CreateKeyRequest{Name: name},
				"data key":   &GenerateDataKeyRequest{Key: name},
				"decrypt":    &DecryptRequest{Key: name, Wrapped: []byte{1}},
			} {
				err := check.Check()
				if err == nil {
					t.Errorf("%s request accepted key name %q", req, name)
				} else if strings.ContainsAny(err.Error(), "\x00\n\x1b\x7f") {
					t.Errorf("%s: the error repeats control characters: %q", req, err)
				}
			}
		})
	}
	for _, name := range []string{"k", "alice.sales", "hospital/patients/2026", "a-b_c.d", "..a", "a..", "...x", strings.Repeat("k", envelope.MaxKeyNameLen)} {
		if err := envelope.CheckKeyName(name); err != nil {
			t.Errorf("CheckKeyName(%q): %v", name, err)
		}
		if err := (&CreateKeyRequest{Name: name}).Check(); err != nil {
			t.Errorf("create key %q: %v", name, err)
		}
		if _, err := envelope.ParseKeyRef("kms://kms.example/" + name); err != nil {
			t.Errorf("ParseKeyRef(%q): %v", name, err)
		}
	}
}
