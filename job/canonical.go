package job

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// DigestPrefix starts the printed form of a job digest.
const DigestPrefix = "sha256:"

// CanonicalValue is the job identity as a JSON-able value: every default
// explicit, host paths left out. See docs/jobs.md, "Canonical form".
func (m *Manifest) CanonicalValue() map[string]any {
	inputs := map[string]any{}
	for _, in := range m.Inputs {
		key := ""
		if in.Key != nil {
			key = in.Key.String()
		}
		inputs[in.Name] = map[string]any{"key": key}
	}
	outputs := map[string]any{}
	for _, o := range m.Outputs {
		outputs[o.Name] = map[string]any{"key": o.Key.String(), "content_type": o.ContentType}
	}
	params := map[string]any{}
	if m.Parameters != nil {
		params = m.Parameters.Canonical()
	}
	return map[string]any{
		"version":    int64(m.Version),
		"name":       m.Name,
		"engine":     m.Engine,
		"inputs":     inputs,
		"outputs":    outputs,
		"parameters": params,
		"resources": map[string]any{
			"memory_bytes": m.Resources.Memory,
			"threads":      int64(m.Resources.Threads),
		},
	}
}

// Canonical returns the canonical form: the RFC 8785 (JCS) serialization of
// CanonicalValue, in UTF-8.
func (m *Manifest) Canonical() []byte {
	b, err := MarshalCanonical(m.CanonicalValue())
	if err != nil {
		// CanonicalValue builds only supported types; an error is a bug here.
		panic(fmt.Sprintf("job: canonical form: %v", err))
	}
	return b
}

// Digest is the job identity: SHA-256 of the canonical form.
func (m *Manifest) Digest() [32]byte { return sha256.Sum256(m.Canonical()) }

// DigestString prints the digest as "sha256:<64 hex digits>".
func (m *Manifest) DigestString() string { return FormatDigest(m.Digest()) }

// FormatDigest prints d as "sha256:<hex>".
func FormatDigest(d [32]byte) string { return DigestPrefix + hex.EncodeToString(d[:]) }

// ParseDigest reads "sha256:<64 hex digits>", as policies and the CLI print it.
func ParseDigest(s string) ([32]byte, error) {
	var d [32]byte
	h, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok {
		return d, fmt.Errorf("job digest %q must start with %s", truncate(s), DigestPrefix)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 32 || strings.ToLower(h) != h {
		return d, fmt.Errorf("job digest %q: want %s followed by 64 lower-case hex digits", truncate(s), DigestPrefix)
	}
	copy(d[:], raw)
	return d, nil
}

// MarshalCanonical writes v as RFC 8785 canonical JSON. It supports the value
// set the job identity uses: nil, bool, string, integers within ±2^53,
// []any, []string and map[string]any. Strings must be valid UTF-8.
func MarshalCanonical(v any) ([]byte, error) {
	var b strings.Builder
	if err := writeCanonical(&b, v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

const maxSafeInt = 1<<53 - 1

func writeCanonical(b *strings.Builder, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		return writeString(b, x)
	case int:
		return writeCanonical(b, int64(x))
	case int64:
		// JCS numbers are IEEE doubles; integers beyond 2^53 would round.
		if x > maxSafeInt || x < -maxSafeInt {
			return fmt.Errorf("integer %d is outside the exactly representable range", x)
		}
		b.WriteString(strconv.FormatInt(x, 10))
	case []string:
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeString(b, s); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeString(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeCanonical(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unsupported type %T in canonical JSON", v)
	}
	return nil
}

func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

// writeString escapes as ECMAScript JSON.stringify does (RFC 8785 §3.2.2.2):
// only '"', '\\' and control characters are escaped; \b \t \n \f \r use their
// short forms, other controls \u00xx in lower-case hex.
func writeString(b *strings.Builder, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("string is not valid UTF-8")
	}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return nil
}
