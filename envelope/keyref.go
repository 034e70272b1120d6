package envelope

import (
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Key reference schemes.
const (
	SchemeLocal     = "local"
	SchemeKMS       = "kms"
	SchemeRecipient = "recipient"
)

// Bounds on key references.
const (
	MaxKeyRefLen  = 1024 // the whole reference string in a header
	MaxKeyNameLen = 256  // the KEY part of a kms:// reference
)

// KeyRef names the key-encryption key that wrapped a file's data key: a
// local key file by key id ("local:ID"), a key at the key service
// ("kms://HOST[:PORT]/NAME[@VERSION]"), or a public-key recipient by KEM and
// key id ("recipient:KEM:ID"). Its canonical string is what the header
// stores.
type KeyRef struct {
	Scheme  string // SchemeLocal, SchemeKMS or SchemeRecipient
	KeyID   string // local and recipient: 32 lowercase hex digits
	KEM     string // recipient: KEMMLKEM768X25519 or KEMX25519
	Host    string // kms: DNS name, IPv4 address or bracket-less IPv6 address
	Port    int    // kms: 0 when absent
	Name    string // kms: key name
	Version uint32 // kms: 0 when absent (the newest version)
}

// String returns the canonical form stored in headers.
func (r KeyRef) String() string {
	switch r.Scheme {
	case SchemeLocal:
		return "local:" + r.KeyID
	case SchemeRecipient:
		return "recipient:" + r.KEM + ":" + r.KeyID
	case SchemeKMS:
		var b strings.Builder
		b.WriteString("kms://")
		if strings.Contains(r.Host, ":") {
			b.WriteString("[" + r.Host + "]")
		} else {
			b.WriteString(r.Host)
		}
		if r.Port != 0 {
			b.WriteString(":" + strconv.Itoa(r.Port))
		}
		b.WriteString("/" + r.Name)
		if r.Version != 0 {
			b.WriteString("@" + strconv.FormatUint(uint64(r.Version), 10))
		}
		return b.String()
	}
	return "invalid:" + r.Scheme
}

// Describe returns a human phrase such as "local key 0123…" for messages.
func (r KeyRef) Describe() string {
	switch r.Scheme {
	case SchemeLocal:
		return "local key " + r.KeyID
	case SchemeRecipient:
		return "recipient key " + r.KeyID + " (" + KEMDisplay(r.KEM) + ")"
	}
	return "key-service key " + r.String()
}

// ParseKeyRef parses and validates a key reference. It accepts only the
// canonical form, so one key has exactly one spelling in headers.
func ParseKeyRef(s string) (KeyRef, error) {
	if len(s) > MaxKeyRefLen {
		return KeyRef{}, fmt.Errorf("key reference longer than %d bytes", MaxKeyRefLen)
	}
	var r KeyRef
	switch {
	case strings.HasPrefix(s, "local:"):
		id := s[len("local:"):]
		if len(id) != 32 || !isLowerHex(id) {
			return KeyRef{}, fmt.Errorf("key reference %q: local key id must be 32 lowercase hex digits", s)
		}
		r = KeyRef{Scheme: SchemeLocal, KeyID: id}
	case strings.HasPrefix(s, "recipient:"):
		kem, id, ok := strings.Cut(s[len("recipient:"):], ":")
		if !ok {
			return KeyRef{}, fmt.Errorf("key reference %q: want recipient:KEM:ID", s)
		}
		if _, err := kemByName(kem); err != nil {
			return KeyRef{}, fmt.Errorf("key reference %q: %w", s, err)
		}
		if len(id) != 32 || !isLowerHex(id) {
			return KeyRef{}, fmt.Errorf("key reference %q: recipient key id must be 32 lowercase hex digits", s)
		}
		r = KeyRef{Scheme: SchemeRecipient, KEM: kem, KeyID: id}
	case strings.HasPrefix(s, "kms://"):
		rest := s[len("kms://"):]
		slash := strings.IndexByte(rest, '/')
		if slash < 0 {
			return KeyRef{}, fmt.Errorf("key reference %q: missing /KEY after the host", s)
		}
		hostport, path := rest[:slash], rest[slash+1:]
		r.Scheme = SchemeKMS
		if err := parseHostPort(hostport, &r); err != nil {
			return KeyRef{}, fmt.Errorf("key reference %q: %w", s, err)
		}
		name, ver, hasVer := strings.Cut(path, "@")
		if err := CheckKeyName(name); err != nil {
			return KeyRef{}, fmt.Errorf("key reference %q: %w", s, err)
		}
		r.Name = name
		if hasVer {
			v, err := strconv.ParseUint(ver, 10, 32)
			if err != nil || v == 0 || ver[0] == '0' {
				return KeyRef{}, fmt.Errorf("key reference %q: version must be a decimal number from 1 to 4294967295", s)
			}
			r.Version = uint32(v)
		}
	default:
		return KeyRef{}, fmt.Errorf("key reference %q: must start with local:, recipient: or kms://", s)
	}
	if r.String() != s {
		return KeyRef{}, fmt.Errorf("key reference %q is not in canonical form (%q)", s, r.String())
	}
	return r, nil
}

func parseHostPort(hp string, r *KeyRef) error {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return fmt.Errorf("unterminated [IPv6] host")
		}
		host = hp[1:end]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil || ip.String() != host {
			return fmt.Errorf("%q is not an IPv6 address in canonical (RFC 5952) form", host)
		}
		rest := hp[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return fmt.Errorf("unexpected %q after host", rest)
			}
			port = rest[1:]
			if port == "" {
				return fmt.Errorf("empty port")
			}
		}
	} else {
		if h, p, ok := strings.Cut(hp, ":"); ok {
			host, port = h, p
			if port == "" {
				return fmt.Errorf("empty port")
			}
		}
		if !validHostName(host) {
			return fmt.Errorf("invalid host %q", host)
		}
	}
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || port[0] == '0' {
			return fmt.Errorf("port must be a number from 1 to 65535")
		}
		r.Port = p
	}
	r.Host = strings.ToLower(host)
	return nil
}

func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false // lowercase only: the canonical form
			}
		}
	}
	return true
}

// ValidKeyName reports whether n is a key name: the KEY of
// kms://HOST/KEY, the one grammar the key service and envelope headers share.
func ValidKeyName(n string) bool { return CheckKeyName(n) == nil }

// CheckKeyName says why n is not a key name, or returns nil. A key name is
// 1-256 bytes: segments of A-Z a-z 0-9 . _ - separated by single slashes (key
// services often name keys by path), with no empty, "." or ".." segment, so
// that no name can be read as a path that leaves its place.
func CheckKeyName(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("key name is empty")
	case len(n) > MaxKeyNameLen:
		return fmt.Errorf("key name of %d bytes is longer than %d", len(n), MaxKeyNameLen)
	}
	for i, seg := range strings.Split(n, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key name %q: segment %d is empty (a leading, trailing or doubled slash)", n, i+1)
		case ".", "..":
			return fmt.Errorf("key name %q: segment %q is not allowed", n, seg)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("key name %q: character %q is not allowed (want segments of A-Z a-z 0-9 . _ - separated by single slashes)", n, c)
			}
		}
	}
	return nil
}

func isLowerHex(s string) bool {
	if _, err := hex.DecodeString(s); err != nil {
		return false
	}
	return strings.ToLower(s) == s
}
