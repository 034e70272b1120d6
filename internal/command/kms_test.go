package command

import (
	"errors"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
)

func TestSameServer(t *testing.T) {
	ref := func(s string) envelope.KeyRef {
		r, err := envelope.ParseKeyRef(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		url, ref string
		same     bool
	}{
		{"https://kms.example:8443", "kms://kms.example:8443/alice/x", true},
		{"https://KMS.example:8443/", "kms://kms.example:8443/alice/x", true},
		{"https://kms.example:8443", "kms://kms.example/alice/x", true}, // 8443 is the reference's default port
		{"https://kms.example", "kms://kms.example/alice/x", false},     // 443 is the URL's
		{"https://kms.example", "kms://kms.example:443/alice/x", true},
		{"https://[::1]:8443", "kms://[::1]:8443/alice/x", true},
		{"https://127.0.0.1:8443", "kms://localhost:8443/alice/x", false},
		{"https://kms.example:9443", "kms://kms.example:8443/alice/x", false},
		{"http://kms.example:8443", "kms://kms.example:8443/alice/x", false},
		{"https://kms.example:8443/prefix", "kms://kms.example:8443/alice/x", false},
		{"kms.example:8443", "kms://kms.example:8443/alice/x", false},
	} {
		if got := SameServer(tc.url, ref(tc.ref)); got != tc.same {
			t.Errorf("SameServer(%q, %q) = %v, want %v", tc.url, tc.ref, got, tc.same)
		}
	}
}

func TestServerFor(t *testing.T) {
	r, _ := envelope.ParseKeyRef("kms://kms.example:8443/alice/x")
	for _, tc := range []struct{ flag, env, want, err string }{
		{"", "", "https://kms.example:8443", ""},
		{"", "https://kms.example:8443", "https://kms.example:8443", ""},
		{"", "https://other.example:8443", "", "--key kms://kms.example:8443/alice/x is a key of the key service at kms.example:8443, but PPML_SERVER is https://other.example:8443"},
		{"https://127.0.0.1:9443", "https://other.example:8443", "https://127.0.0.1:9443", ""}, // the flag is explicit
	} {
		got, err := ServerFor(r, tc.flag, tc.env, "--key kms://kms.example:8443/alice/x")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, new(*UsageError)) {
				t.Errorf("flag %q env %q: got %q, %v; want usage error %q", tc.flag, tc.env, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("flag %q env %q: got %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
	}
}
