package client

import (
	"strings"
	"testing"
)

func TestServerURL(t *testing.T) {
	for _, c := range []struct {
		host string
		port int
		want string
	}{
		{"kms.example", 0, "https://kms.example:8443"},
		{"127.0.0.1", 9000, "https://127.0.0.1:9000"},
		{"::1", 0, "https://[::1]:8443"},
	} {
		if got := ServerURL(c.host, c.port); got != c.want {
			t.Errorf("ServerURL(%q, %d) = %q, want %q", c.host, c.port, got, c.want)
		}
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		server string
		opts   Options
		want   string
	}{
		{"http://kms:8443", Options{}, "https://"},
		{"kms:8443", Options{}, "https://"},
		{"https://kms:8443", Options{Fingerprint: "abcd"}, "64 hex digits"},
		{"https://kms:8443", Options{Fingerprint: strings.Repeat("zz", 32)}, "64 hex digits"},
		{"https://kms:8443", Options{CAFile: "/nonexistent/ca.pem"}, "CA file"},
	} {
		if _, err := New(c.server, "", c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %+v): %v, want an error about %q", c.server, c.opts, err, c.want)
		}
	}
	if _, err := New("https://kms:8443", "", Options{Fingerprint: strings.Repeat("AB:", 31) + "AB"}); err != nil {
		t.Errorf("colon-separated upper-case fingerprint: %v", err)
	}
}
