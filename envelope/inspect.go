package envelope

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Info is what Inspect reports: header fields and the layout check, never
// key material (the wrapped key appears only as its length).
type Info struct {
	File          string `json:"file,omitempty"`
	FormatVersion int    `json:"format_version"`
	CipherSuite   string `json:"cipher_suite"`
	KeyRef        string `json:"key_ref"`
	KeyScheme     string `json:"key_scheme"`
	// Recipient describes a public-key recipient (key_scheme "recipient"):
	// the key type and key id, never key material.
	Recipient       *RecipientInfo `json:"recipient,omitempty"`
	WrappedKeyBytes int            `json:"wrapped_key_bytes"`
	ContentType     string         `json:"content_type"`
	PlaintextBytes  *uint64        `json:"plaintext_bytes"` // null when the writer streamed its input
	// LengthAfterWrap: the length was recorded after the data key was
	// wrapped (two-phase writing), so the payload key, not the key wrap,
	// authenticates it.
	LengthAfterWrap bool   `json:"length_after_wrap,omitempty"`
	SegmentSize     int    `json:"segment_size"`
	Segments        uint64 `json:"segments,omitempty"`
	HeaderBytes     int    `json:"header_bytes"`
	FileBytes       int64  `json:"file_bytes"`
	Salt            string `json:"salt"`
	NoncePrefix     string `json:"nonce_prefix"`
	Layout          string `json:"layout"` // "ok" or "error"
	LayoutError     string `json:"layout_error,omitempty"`
	Authenticated   bool   `json:"authenticated"`
}

// RecipientInfo is what inspect shows of a recipient key.
type RecipientInfo struct {
	KEM   string `json:"kem"`    // mlkem768x25519 or x25519
	Type  string `json:"type"`   // for people: "ML-KEM-768 + X25519"
	KeyID string `json:"key_id"` // the public key's fingerprint
}

// Inspect parses the header from r and checks that the file size fits it.
// size is the file size, or -1 to count the rest of r.
func Inspect(r io.Reader, size int64) (*Info, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if size < 0 {
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		size = int64(h.Len()) + n
	}
	in := &Info{
		FormatVersion: int(h.Version), CipherSuite: h.Suite.String(), KeyRef: h.KeyRef.String(), KeyScheme: h.KeyRef.Scheme,
		WrappedKeyBytes: len(h.WrappedKey), ContentType: h.ContentType.String(), LengthAfterWrap: h.LengthAfterWrap(), SegmentSize: h.SegmentSize,
		HeaderBytes: h.Len(), FileBytes: size, Salt: hex.EncodeToString(h.Salt[:]), NoncePrefix: hex.EncodeToString(h.NoncePrefix[:]),
		Layout: "ok",
	}
	if h.KeyRef.Scheme == SchemeRecipient {
		in.Recipient = &RecipientInfo{KEM: h.KeyRef.KEM, Type: KEMDisplay(h.KeyRef.KEM), KeyID: h.KeyRef.KeyID}
	}
	body := uint64(size - int64(h.Len()))
	if h.LengthKnown() {
		n := h.PlaintextLength
		in.PlaintextBytes = &n
		in.Segments = numSegments(n, h.SegmentSize)
		if want := BodyLen(n, h.SegmentSize); body != want {
			in.Layout = "error"
			if body < want {
				in.LayoutError = fmt.Sprintf("truncated: the body is %d bytes, the header's plaintext length needs %d", body, want)
			} else {
				in.LayoutError = fmt.Sprintf("%d bytes follow the final segment (appended data)", body-want)
			}
		}
	} else if n, ok := plaintextLen(body, h.SegmentSize); ok {
		in.Segments = numSegments(n, h.SegmentSize)
	} else {
		in.Layout = "error"
		in.LayoutError = fmt.Sprintf("a body of %d bytes cannot end with a complete final segment (truncated or extended)", body)
	}
	return in, nil
}

// Text renders Info for people.
func (in *Info) Text() string {
	var b strings.Builder
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "%-15s %s\n", k+":", fmt.Sprintf(f, a...)) }
	if in.File != "" {
		row("file", "%s (%d bytes)", in.File, in.FileBytes)
	}
	row("format", "ppml envelope version %d", in.FormatVersion)
	row("cipher suite", "%s", in.CipherSuite)
	row("key", "%s", in.KeyRef)
	if r := in.Recipient; r != nil {
		row("recipient", "%s public key, key id %s (only its private key decrypts)", r.Type, r.KeyID)
	}
	row("wrapped key", "%d bytes", in.WrappedKeyBytes)
	row("content type", "%s", in.ContentType)
	if in.PlaintextBytes != nil && in.LengthAfterWrap {
		row("plaintext", "%d bytes (recorded after the data key was wrapped)", *in.PlaintextBytes)
	} else if in.PlaintextBytes != nil {
		row("plaintext", "%d bytes", *in.PlaintextBytes)
	} else {
		row("plaintext", "length not recorded (streamed input)")
	}
	row("segments", "%d of up to %d bytes", in.Segments, in.SegmentSize)
	row("header", "%d bytes", in.HeaderBytes)
	if in.LayoutError != "" {
		row("layout", "ERROR: %s", in.LayoutError)
	} else {
		row("layout", "ok (file size fits the header)")
	}
	row("authenticated", "no (inspect uses no key; decrypt checks every segment)")
	return b.String()
}
