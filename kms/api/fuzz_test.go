package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest"
)

// fuzzDecoder checks that a decoder never panics and that whatever it
// accepts passes its own checks again after a JSON round trip.
func fuzzDecoder[T any, P interface {
	*T
	Check() error
}](f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		if err := DecodeBytes(b, P(&v)); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		again, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		var w T
		if err := DecodeBytes(again, P(&w)); err != nil {
			t.Fatalf("re-encoded value refused: %v", err)
		}
	})
}

func FuzzDecodeReleaseRequest(f *testing.F) {
	fuzzDecoder[ReleaseRequest](f,
		`{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","evidence":{"platform":"sim","data":"AQID"},"public_key":"AQID","manifest":"eA==","keys":[{"ref":"kms://h/k@1","wrapped":"AQ==","aad":""}]}`,
		`{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","evidence":{"platform":"sim","data":"AQID"},"public_key":"AQID","manifest":"eA==","keys":[],"outputs":[{"ref":"kms://h/out","aad":"UFBNTEVOVgEBAQ=="}]}`,
		`{"nonce":"","kem":25722}`, `[]`, `{"keys":null}`, `{"outputs":[{"ref":""}]}`)
}

func TestReleaseRequestOutputsCheck(t *testing.T) {
	base := func() ReleaseRequest {
		return ReleaseRequest{Nonce: make([]byte, NonceSize), Evidence: attest.Evidence{Platform: "sim", Data: []byte{1}}, PublicKey: []byte{1}, Manifest: []byte("x")}
	}
	r := base()
	r.Outputs = []ReleaseOutputItem{{Ref: "kms://h/out", AAD: make([]byte, 63)}}
	if err := r.Check(); err != nil {
		t.Fatalf("outputs only: %v", err)
	}
	r.Outputs = append(r.Outputs, ReleaseOutputItem{Ref: ""})
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "outputs[1]: ref") {
		t.Fatalf("empty output ref: %v", err)
	}
	r = base()
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "give 1 to") {
		t.Fatalf("nothing asked: %v", err)
	}
	r.Keys = make([]ReleaseKeyItem, MaxReleaseKeys)
	for i := range r.Keys {
		r.Keys[i] = ReleaseKeyItem{Ref: "k", Wrapped: []byte{1}}
	}
	r.Outputs = []ReleaseOutputItem{{Ref: "k"}}
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "got 65") {
		t.Fatalf("over the limit with outputs: %v", err)
	}
	r = base()
	r.Outputs = []ReleaseOutputItem{{Ref: "k", AAD: make([]byte, 64<<10+1)}}
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "aad longer") {
		t.Fatalf("long aad: %v", err)
	}
}

func FuzzDecodeCreateTenant(f *testing.F) {
	fuzzDecoder[CreateTenantRequest](f, `{"name":"alice","role":"owner"}`, `{"name":"","role":"x"}`)
}

func FuzzDecodeCreateToken(f *testing.F) {
	fuzzDecoder[CreateTokenRequest](f, `{"tenant":"alice","description":"laptop"}`)
}

func FuzzDecodeCreateKey(f *testing.F) {
	fuzzDecoder[CreateKeyRequest](f, `{"name":"alice/sales.v1"}`, `{"name":"a//b"}`)
}

func FuzzDecodeGenerateDataKey(f *testing.F) {
	fuzzDecoder[GenerateDataKeyRequest](f, `{"key":"k","aad":"AAEC"}`)
}

func FuzzDecodeDecrypt(f *testing.F) {
	fuzzDecoder[DecryptRequest](f, `{"key":"k","wrapped":"AAEC","aad":null}`)
}

func FuzzDecodeUnseal(f *testing.F) {
	fuzzDecoder[UnsealRequest](f, `{"share":"ppml-share-1:00"}`)
}

func TestDecodeRefusesTrailingAndUnknown(t *testing.T) {
	var r CreateKeyRequest
	for _, in := range []string{`{"name":"a"} {}`, `{"name":"a","x":1}`, `{"name":`, `{"name":"a b"}`} {
		if err := DecodeBytes([]byte(in), &r); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
	if err := DecodeBytes([]byte(`{"name":"alice.k"}`), &r); err != nil || r.Name != "alice.k" {
		t.Fatal(err)
	}
}

func FuzzDecodeRenewToken(f *testing.F) {
	fuzzDecoder[RenewTokenRequest](f, `{}`, `{"id":"0123456789abcdef","ttl":"24h"}`, `{"ttl":"1m"}`, `{"ttl":"-5h"}`)
}

func FuzzDecodeKeyVersion(f *testing.F) {
	fuzzDecoder[KeyVersionRequest](f, `{"key":"alice.sales","version":2}`, `{"key":"a","version":0}`)
}
