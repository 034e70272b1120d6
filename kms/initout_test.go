package kms

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
)

// TestInitRecipients starts a new Shamir-sealed server whose shares and
// admin token are encrypted to public keys: the output holds no share and
// no token in the clear, each holder's line opens with that holder's
// private key only, and the shares so recovered unseal the restarted
// server.
func TestInitRecipients(t *testing.T) {
	var ids []*envelope.Identity
	for _, kem := range []string{envelope.KEMX25519, envelope.KEMMLKEM768X25519, envelope.KEMX25519} {
		id, err := envelope.GenerateIdentity(kem)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	admin := ids[0]
	dir := t.TempDir()
	var out bytes.Buffer
	var token string
	cfg := Config{DataDir: dir, Seal: "shamir", Shares: 3, Threshold: 2, Out: &out, Logger: slog.New(slog.DiscardHandler),
		ShareRecipients: []*envelope.Recipient{ids[0].Recipient(), ids[1].Recipient(), ids[2].Recipient()},
		AdminRecipient:  admin.Recipient(),
		BootstrapToken:  func(tok string) { token = tok }}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Sealed() {
		t.Fatal("a new server must start unsealed")
	}
	s.Close()
	text := out.String()
	if regexp.MustCompile(`ppml-share-1:|ppml_[0-9a-f]{16}_`).MatchString(text) || strings.Contains(text, token) {
		t.Fatalf("a share or the token is in the output in the clear:\n%s", text)
	}

	// line returns the ciphertext of a label, checking the recipient id.
	line := func(label string, id *envelope.Identity) []byte {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + label + ` ([0-9a-f]{32}) ([A-Za-z0-9+/=]+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no line %s in\n%s", label, text)
		}
		if m[1] != id.ID() {
			t.Fatalf("%s: recipient %s, want %s", label, m[1], id.ID())
		}
		b, err := base64.StdEncoding.DecodeString(m[2])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	open := func(ct []byte, id *envelope.Identity) (string, error) {
		var pt bytes.Buffer
		_, err := envelope.Decrypt(&pt, bytes.NewReader(ct), id)
		return strings.TrimSuffix(pt.String(), "\n"), err
	}
	if got, err := open(line("ppml-init-admin-token", admin), admin); err != nil || got != token {
		t.Fatalf("admin token: %q, %v; want the bootstrap token", got, err)
	}
	var shares []string
	for i, id := range ids {
		label := "ppml-init-share-" + string(rune('1'+i))
		ct := line(label, id)
		if _, err := open(ct, ids[(i+1)%3]); err == nil {
			t.Fatalf("%s opened with another holder's key", label)
		}
		sh, err := open(ct, id)
		if err != nil || !strings.HasPrefix(sh, "ppml-share-1:") {
			t.Fatalf("%s: %q, %v", label, sh, err)
		}
		shares = append(shares, sh)
	}

	cfg.Out, cfg.BootstrapToken = &bytes.Buffer{}, nil
	s, err = New(cfg)
	if err != nil || !s.Sealed() {
		t.Fatalf("restart: sealed=%v %v", s != nil && s.Sealed(), err)
	}
	defer s.Close()
	for _, sh := range shares[1:] {
		if _, err := s.Unseal(sh); err != nil {
			t.Fatal(err)
		}
	}
	if s.Sealed() {
		t.Fatal("still sealed after 2 of the decrypted shares")
	}
}

// TestInitRecipientsRefused: recipients that do not fit the seal are
// refused before anything is created.
func TestInitRecipientsRefused(t *testing.T) {
	id, err := envelope.GenerateIdentity(envelope.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	r := id.Recipient()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Seal: "shamir", Shares: 3, Threshold: 2, ShareRecipients: []*envelope.Recipient{r, r}}, "2 share recipients for 3 shares"},
		{Config{Seal: "file", ShareRecipients: []*envelope.Recipient{r}}, "share recipients are for the shamir seal"},
	} {
		dir := t.TempDir()
		tc.cfg.DataDir, tc.cfg.Out, tc.cfg.Logger = dir, &bytes.Buffer{}, slog.New(slog.DiscardHandler)
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg.ShareRecipients, err, tc.want)
		}
		if entries, _ := filepath.Glob(filepath.Join(dir, "*")); len(entries) != 0 {
			t.Errorf("created %v before refusing", entries)
		}
	}
}
