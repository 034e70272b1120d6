package kms_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOperations(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{Seal: "shamir", Shares: 2, Threshold: 2, RateLimit: 5, RateBurst: 5})
	ctx := context.Background()
	if code, _ := get(t, e.url+"/healthz"); code != 200 {
		t.Fatal("healthz", code)
	}
	if code, _ := get(t, e.url+"/readyz"); code != 200 {
		t.Fatal("readyz", code)
	}
	// TLS 1.2 is refused.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}}
	if _, err := (&http.Client{Transport: tr}).Get(e.url + "/healthz"); err == nil {
		t.Fatal("TLS 1.2 accepted")
	}
	// A wrong pin is refused.
	bad, _ := client.New(e.url, "", client.Options{Fingerprint: strings.Repeat("00", 32)})
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrong pin: %v", err)
	}
	// Trusting the certificate as a CA works too; a client with neither pin nor CA refuses it.
	byCA, err := client.New(e.url, "", client.Options{CAFile: filepath.Join(dir, kms.TLSCertFile)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := byCA.Status(ctx); err != nil {
		t.Fatalf("CA file: %v", err)
	}
	plain, _ := client.New(e.url, "", client.Options{})
	if _, err := plain.Status(ctx); err == nil {
		t.Fatal("self-signed certificate accepted without pin or CA")
	}
	// Per-token rate limit.
	var limited bool
	for range 20 {
		if _, err := e.admin.ListKeys(ctx); err != nil {
			var se *client.StatusError
			if !asStatus(err, &se) || se.Status != 429 {
				t.Fatal(err)
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("no 429 after 20 requests with a burst of 5")
	}
	code, body := get(t, e.url+"/metrics")
	if code != 200 || !strings.Contains(body, "ppml_kms_request_duration_seconds_bucket") || !strings.Contains(body, `code="429"`) {
		t.Fatalf("metrics: %d %.300s", code, body)
	}
	shares := shareRE.FindAllString(e.Output(), -1)
	e.stop()
	e = startServer(t, dir, kms.Config{Seal: "shamir"})
	if code, _ := get(t, e.url+"/readyz"); code != 503 {
		t.Fatal("sealed readyz", code)
	}
	if _, err := e.client("").Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client("").Unseal(ctx, shares[1]); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, e.url+"/readyz"); code != 200 {
		t.Fatal("unsealed readyz", code)
	}
	_ = api.RoleOwner
}

func asStatus(err error, se **client.StatusError) bool {
	e, ok := err.(*client.StatusError)
	if ok {
		*se = e
	}
	return ok
}
