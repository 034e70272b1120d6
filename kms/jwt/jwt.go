// Package jwt is the key service's attestation token: after a release it
// signs what it verified about the TEE (platform, measurement, TCB status,
// job digest, keys) as an ES256 compact JWS, and publishes its keys at
// /.well-known/jwks.json. Relying parties verify tokens with Verify and
// ParseJWKS; nothing here links server code.
package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Claims are the claims of an attestation token: what the key service
// verified about the TEE a key was released to.
type Claims struct {
	Issuer      string   `json:"iss"`
	Subject     string   `json:"sub"` // the job digest, hex
	IssuedAt    int64    `json:"iat"`
	Expiry      int64    `json:"exp"`
	ID          string   `json:"jti"`
	Platform    string   `json:"platform"`
	TEEType     string   `json:"tee_type,omitempty"`
	Measurement string   `json:"measurement"`
	Signer      string   `json:"signer,omitempty"`
	TCBStatus   string   `json:"tcb_status,omitempty"`
	JobDigest   string   `json:"job_digest"`
	Insecure    bool     `json:"insecure"`
	Debug       bool     `json:"debug"`
	Keys        []string `json:"keys,omitempty"`
}

var b64 = base64.RawURLEncoding

// KeyID is the JWK thumbprint-like id: base64url SHA-256 of the point.
func KeyID(pub *ecdsa.PublicKey) string {
	b, _ := pub.Bytes()
	h := sha256.Sum256(b)
	return b64.EncodeToString(h[:16])
}

// Sign returns a compact JWS (ES256) of claims.
func Sign(key *ecdsa.PrivateKey, claims any) (string, error) {
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": KeyID(&key.PublicKey)})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + b64.EncodeToString(sig), nil
}

// Verify checks an ES256 compact JWS against keys (by kid) and its
// expiry at now, and decodes its claims.
func Verify(token string, keys []*ecdsa.PublicKey, now time.Time) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token: want 3 dot-separated parts, got %d", len(parts))
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	var hdr struct{ Alg, Kid string }
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	if hdr.Alg != "ES256" {
		return nil, fmt.Errorf("token: algorithm %q, want ES256", hdr.Alg)
	}
	var pub *ecdsa.PublicKey
	for _, k := range keys {
		if KeyID(k) == hdr.Kid {
			pub = k
		}
	}
	if pub == nil {
		return nil, fmt.Errorf("token: signed by unknown key %q", hdr.Kid)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("token: signature is not 64 bytes of base64url")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, fmt.Errorf("token: signature does not verify")
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	if now.Unix() >= c.Expiry {
		return nil, fmt.Errorf("token expired at %s", time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// JWK is a public key in a JWKS document.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKOf is the JWKS entry of pub.
func JWKOf(pub *ecdsa.PublicKey) JWK {
	b, _ := pub.Bytes() // 0x04 | X | Y
	return JWK{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(b[1:33]), Y: b64.EncodeToString(b[33:65]), Kid: KeyID(pub), Alg: "ES256", Use: "sig"}
}

// ParseJWK returns the P-256 public key of j.
func ParseJWK(j JWK) (*ecdsa.PublicKey, error) {
	if j.Kty != "EC" || j.Crv != "P-256" {
		return nil, fmt.Errorf("jwk: want EC P-256, got %s %s", j.Kty, j.Crv)
	}
	x, err1 := b64.DecodeString(j.X)
	y, err2 := b64.DecodeString(j.Y)
	if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("jwk: bad coordinates")
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
}

// ParseJWKS reads the keys of a /.well-known/jwks.json document.
func ParseJWKS(b []byte) ([]*ecdsa.PublicKey, error) {
	var doc struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var out []*ecdsa.PublicKey
	for _, j := range doc.Keys {
		k, err := ParseJWK(j)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
