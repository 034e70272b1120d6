package kms

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/seal"
)

// What a new key service shows once — the unseal shares and the admin
// token — goes to Config.Out. On a terminal that is the operator's screen;
// in a container it is the log pipeline, which keeps copies anywhere. So
// each can be encrypted to a public key of the person who will hold it
// (Vault's `operator init -pgp-keys`, with ppml's own public-key
// recipients): Out then carries one line per secret,
//
//	ppml-init-share-N RECIPIENT-ID BASE64      (share N, for its holder)
//	ppml-init-admin-token RECIPIENT-ID BASE64  (the admin token)
//
// where BASE64 is a ppml envelope ([docs/formats/envelope.md]) that only
// the holder's private key opens:
//
//	awk '$1=="ppml-init-share-1" {print $3}' LOG | base64 -d | ppml decrypt --key holder.key -

// checkInitRecipients refuses recipients that do not fit the seal, before
// anything is created: one per share, for the Shamir seal only.
func checkInitRecipients(cfg *Config) error {
	if len(cfg.ShareRecipients) == 0 {
		return nil
	}
	if seal.Type(cfg.Seal) != seal.TypeShamir {
		return fmt.Errorf("kms: share recipients are for the shamir seal; this server uses the %s seal, which has no shares", cfg.Seal)
	}
	if len(cfg.ShareRecipients) != cfg.Shares {
		return fmt.Errorf("kms: %d share recipients for %d shares: give one public key per share holder", len(cfg.ShareRecipients), cfg.Shares)
	}
	return nil
}

// showOnce writes secret to out: as it is without a recipient, else
// encrypted to r as one line labelled label.
func showOnce(out io.Writer, label, secret string, r *envelope.Recipient) error {
	if r == nil {
		_, err := fmt.Fprintln(out, "  "+secret)
		return err
	}
	var buf bytes.Buffer
	if _, err := envelope.Encrypt(&buf, strings.NewReader(secret+"\n"), r, &envelope.Options{ContentType: envelope.TypeBytes, Workers: 1}); err != nil {
		return fmt.Errorf("encrypting %s to recipient key %s: %w", label, r.ID(), err)
	}
	_, err := fmt.Fprintf(out, "%s %s %s\n", label, r.ID(), base64.StdEncoding.EncodeToString(buf.Bytes()))
	return err
}
