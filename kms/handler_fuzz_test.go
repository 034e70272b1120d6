package kms_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/kmstest"
)

var fuzzSrv struct {
	once   sync.Once
	h      http.Handler
	tokens map[string]string
	err    error
	dir    string // removed by TestMain
}

// fuzzServer is one server (in a temporary directory) shared by all fuzz
// iterations of this process; tokens of each role are made through the API.
func fuzzServer(t testing.TB) (http.Handler, map[string]string) {
	fuzzSrv.once.Do(func() {
		dir, err := os.MkdirTemp("", "ppml-kms-fuzz-")
		if err != nil {
			fuzzSrv.err = err
			return
		}
		fuzzSrv.dir = dir
		// A real server (the fuzzer sends requests to its handler
		// directly, for a steady exec rate); stopped with the process.
		srv, err := kmstest.Start(kmstest.Options{Config: kms.Config{DataDir: dir, RateLimit: -1}})
		if err != nil {
			fuzzSrv.err = err
			return
		}
		h := srv.Handler()
		admin := srv.AdminToken()
		do := func(tok, method, path, body string) []byte {
			r := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Body.Bytes()
		}
		toks := map[string]string{"admin": admin}
		for _, p := range []struct{ name, role string }{{"o", "owner"}, {"r", "runner"}} {
			do(admin, "POST", "/v1/tenants", `{"name":"`+p.name+`","role":"`+p.role+`"}`)
			toks[p.role] = tokenRE.FindString(string(do(admin, "POST", "/v1/tokens", `{"tenant":"`+p.name+`"}`)))
		}
		do(toks["owner"], "POST", "/v1/keys", `{"name":"k"}`)
		fuzzSrv.h, fuzzSrv.tokens = h, toks
	})
	if fuzzSrv.err != nil {
		t.Fatal(fuzzSrv.err)
	}
	return fuzzSrv.h, fuzzSrv.tokens
}

var fuzzRoutes = []struct{ role, method, path string }{
	{"admin", "POST", "/v1/tenants"},
	{"admin", "POST", "/v1/tokens"},
	{"owner", "POST", "/v1/keys/rotate"},
	{"owner", "PUT", "/v1/policy?key=k"},
	{"owner", "POST", "/v1/datakey"},
	{"owner", "POST", "/v1/decrypt"},
	{"runner", "POST", "/v1/release"},
	{"", "POST", "/v1/sys/unseal"},
	{"owner", "GET", "/v1/audit/proof?index="},
	{"owner", "PUT", "/v1/cert-policies?name=o/p"},
	{"runner", "POST", "/v1/certs"},
}

// FuzzHandlers sends arbitrary bodies to every route that reads one: the
// server must answer with a 4xx (or 2xx), never a 5xx or a panic.
func FuzzHandlers(f *testing.F) {
	f.Add(uint8(0), []byte(`{"name":"x1","role":"owner"}`))
	f.Add(uint8(3), []byte("version: 1\nplatforms:\n  sim:\n    signers: ["+string(bytes.Repeat([]byte("ab"), 32))+"]\n"))
	f.Add(uint8(4), []byte(`{"key":"k","aad":"AAE="}`))
	f.Add(uint8(5), []byte(`{"key":"k","wrapped":"AAAAAQ==","aad":""}`))
	f.Add(uint8(6), []byte(`{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","evidence":{"platform":"sim","data":"AQ=="},"public_key":"AQ==","manifest":"eA==","keys":[{"ref":"k","wrapped":"AQ=="}]}`))
	f.Add(uint8(6), []byte(`{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","evidence":{"platform":"sim","data":"AQ=="},"public_key":"AQ==","manifest":"eA==","keys":[],"outputs":[{"ref":"k","aad":"AQ=="}]}`))
	f.Add(uint8(7), []byte(`{"share":"ppml-share-1:00"}`))
	f.Add(uint8(8), []byte(`7`))
	f.Add(uint8(9), []byte("version: 1\nplatforms:\n  sim:\n    signers: ["+string(bytes.Repeat([]byte("ab"), 32))+"]\ncertificate:\n  roles: [w]\n"))
	f.Add(uint8(10), []byte(`{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","evidence":{"platform":"sim","data":"AQ=="},"csr":"MIIB","manifest":"eA==","policy":"o/p","role":"w"}`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		h, toks := fuzzServer(t)
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := rt.path
		if rt.method == "GET" {
			path += string(bytes.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, body))
			body = nil
		}
		r := httptest.NewRequest(rt.method, path, bytes.NewReader(body))
		if rt.role != "" {
			r.Header.Set("Authorization", "Bearer "+toks[rt.role])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", rt.method, path, w.Code, w.Body.Bytes())
		}
	})
}
