package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"
)

// FuzzVerifyJWT feeds arbitrary tokens to the attestation-token verifier
// (what relying parties run on tokens they receive).
func FuzzVerify(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, _ := Sign(k, Claims{Platform: "sim", Expiry: time.Now().Add(time.Hour).Unix()})
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Verify(s, []*ecdsa.PublicKey{&k.PublicKey}, time.Now())
		if err == nil && c == nil {
			t.Fatal("nil claims without error")
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"` + JWKOf(&k.PublicKey).X + `","y":"` + JWKOf(&k.PublicKey).Y + `"}]}`))
	f.Add([]byte(`{"keys":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { ParseJWKS(b) })
}

func TestJWTRoundTrip(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tok, err := Sign(k, Claims{Platform: "sgx", Measurement: "ab", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, []*ecdsa.PublicKey{&k.PublicKey}, now)
	if err != nil || c.Platform != "sgx" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := Verify(tok, []*ecdsa.PublicKey{&k.PublicKey}, now.Add(2*time.Minute)); err == nil {
		t.Fatal("expired token accepted")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := Verify(tok, []*ecdsa.PublicKey{&other.PublicKey}, now); err == nil {
		t.Fatal("token accepted under another key")
	}
	bad := []byte(tok)
	bad[len(bad)/2] ^= 1
	if _, err := Verify(string(bad), []*ecdsa.PublicKey{&k.PublicKey}, now); err == nil {
		t.Fatal("tampered token accepted")
	}
}
