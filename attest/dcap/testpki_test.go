package dcap

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/dcap/pcs"
)

// testPKI is a test-only copy of Intel's PKI: a root, a PCK Processor CA, a
// PCK certificate carrying a real SGX extension, and a TCB Signing
// certificate. It is injected through Verifier.Roots; the pinned Intel root
// is never touched.
type testPKI struct {
	t                        *testing.T
	root, pckCA, pck, tcbSig *x509.Certificate
	rootKey, caKey, pckKey   *ecdsa.PrivateKey
	tcbKey                   *ecdsa.PrivateKey
	serial                   int64
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *testPKI) issue(tmpl *x509.Certificate, pub *ecdsa.PublicKey, parent *x509.Certificate, key *ecdsa.PrivateKey) *x509.Certificate {
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial*1000 + 7)
	tmpl.NotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl.NotAfter = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

func caTmpl(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: []string{"ppml test"}},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
}

func newTestPKI(t *testing.T, realPCK *x509.Certificate) *testPKI {
	p := &testPKI{t: t, rootKey: newKey(t), caKey: newKey(t), pckKey: newKey(t), tcbKey: newKey(t)}
	p.root = p.issue(caTmpl("ppml Test SGX Root CA"), &p.rootKey.PublicKey, nil, p.rootKey)
	p.pckCA = p.issue(caTmpl("Intel SGX PCK Processor CA"), &p.caKey.PublicKey, p.root, p.rootKey)
	var ext []pkix.Extension
	for _, e := range realPCK.Extensions {
		if e.Id.Equal(pcs.OIDSGXExtensions) {
			ext = append(ext, e)
		}
	}
	p.pck = p.issue(&x509.Certificate{Subject: pkix.Name{CommonName: "Intel SGX PCK Certificate"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtraExtensions: ext}, &p.pckKey.PublicKey, p.pckCA, p.caKey)
	p.tcbSig = p.issue(&x509.Certificate{Subject: pkix.Name{CommonName: "Intel SGX TCB Signing"},
		KeyUsage: x509.KeyUsageDigitalSignature}, &p.tcbKey.PublicKey, p.root, p.rootKey)
	return p
}

func (p *testPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return pool
}

func pemChain(cs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range cs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

func rawSign(t *testing.T, k *ecdsa.PrivateKey, data []byte) []byte {
	d := sha256.Sum256(data)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func (p *testPKI) crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, at time.Time, revoked ...*x509.Certificate) string {
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: at.Add(-24 * time.Hour), NextUpdate: at.Add(30 * 24 * time.Hour)}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: at.Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		p.t.Fatal(err)
	}
	return hex.EncodeToString(der)
}

// quote re-signs a real SGX v3 quote's header and body under the test PKI:
// new attestation key, QE report bound to it and signed by the test PCK.
func (p *testPKI) quote(real []byte, chain string) []byte { return p.quoteVersion(real, chain, 3) }

// quoteVersion builds a quote v3 or (SGX) v4 from a real quote's body.
func (p *testPKI) quoteVersion(real []byte, chain string, version uint16) []byte {
	q, err := ParseQuote(real)
	if err != nil {
		p.t.Fatal(err)
	}
	signed := bytes.Clone(q.Signed)
	binary.LittleEndian.PutUint16(signed, version)
	if version == 4 {
		clear(signed[8:12]) // v4 reserves the QE and PCE SVN fields
	}
	return p.signQuote(signed, q.QEReportRaw, chain, version)
}

// signQuote signs header‖body with a fresh attestation key and wraps it with
// the QE report (from a real quote, re-bound to that key and signed by the
// test PCK) and the PCK chain: a quote of the given version (3, or 4 and 5
// with QE report certification data).
func (p *testPKI) signQuote(signed, realQEReport []byte, chain string, version uint16) []byte {
	ak := newKey(p.t)
	akRaw := make([]byte, 64)
	ak.X.FillBytes(akRaw[:32])
	ak.Y.FillBytes(akRaw[32:])
	auth := []byte("ppml test QE authentication data")
	qeReport := bytes.Clone(realQEReport)
	h := sha256.Sum256(append(bytes.Clone(akRaw), auth...))
	copy(qeReport[320:], h[:])
	clear(qeReport[352:])

	var cd bytes.Buffer // QE report certification data
	cd.Write(qeReport)
	cd.Write(rawSign(p.t, p.pckKey, qeReport))
	binary.Write(&cd, binary.LittleEndian, uint16(len(auth)))
	cd.Write(auth)
	binary.Write(&cd, binary.LittleEndian, uint16(5))
	binary.Write(&cd, binary.LittleEndian, uint32(len(chain)))
	cd.WriteString(chain)

	var sd bytes.Buffer
	sd.Write(rawSign(p.t, ak, signed))
	sd.Write(akRaw)
	if version == 3 {
		sd.Write(cd.Bytes())
	} else {
		binary.Write(&sd, binary.LittleEndian, uint16(6))
		binary.Write(&sd, binary.LittleEndian, uint32(cd.Len()))
		sd.Write(cd.Bytes())
	}

	out := bytes.Clone(signed)
	out = binary.LittleEndian.AppendUint32(out, uint32(sd.Len()))
	return append(out, sd.Bytes()...)
}

// bundle signs the real TCB info and QE identity texts with the test TCB
// signing key and issues fresh CRLs.
func (p *testPKI) bundle(real Bundle, at time.Time) Bundle {
	return Bundle{
		TCBInfo:               real.TCBInfo,
		TCBInfoSignature:      hex.EncodeToString(rawSign(p.t, p.tcbKey, []byte(real.TCBInfo))),
		TCBInfoIssuerChain:    pemChain(p.tcbSig, p.root),
		QEIdentity:            real.QEIdentity,
		QEIdentitySignature:   hex.EncodeToString(rawSign(p.t, p.tcbKey, []byte(real.QEIdentity))),
		QEIdentityIssuerChain: pemChain(p.tcbSig, p.root),
		PCKCRLIssuerChain:     pemChain(p.pckCA, p.root),
		PCKCRL:                p.crl(p.pckCA, p.caKey, at),
		RootCACRL:             p.crl(p.root, p.rootKey, at),
	}
}

func TestTestPKI(t *testing.T) {
	tc := caseByID(t, "phala-sgx-v3")
	rq, err := ParseQuote(tc.quote)
	if err != nil {
		t.Fatal(err)
	}
	realPCK, err := x509.ParseCertificate(rq.PCKChain[0])
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPKI(t, realPCK)
	realBundle := bundleOf(t, tc.bundle)
	chain := pemChain(p.pck, p.pckCA, p.root)
	q := p.quote(tc.quote, chain)

	run := func(t *testing.T, quote []byte, bd Bundle, roots *x509.CertPool) (string, error) {
		t.Helper()
		c, err := NewCollateral(bd)
		if err != nil {
			t.Fatalf("collateral: %v", err)
		}
		cl, err := (&Verifier{Source: StaticSource(c), Roots: roots}).Verify(t.Context(), evidence(quote), optsAt(tc.at))
		if err != nil {
			return checkName(err), err
		}
		return cl.TCBStatus, nil
	}
	expect := func(t *testing.T, quote []byte, bd Bundle, roots *x509.CertPool, want string) {
		t.Helper()
		got, err := run(t, quote, bd, roots)
		if got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
		if err != nil {
			t.Logf("refused: %v", err)
		}
	}

	t.Run("test root accepts", func(t *testing.T) {
		expect(t, q, p.bundle(realBundle, tc.at), p.roots(), tc.TCBStatus)
	})
	t.Run("SGX quote v4", func(t *testing.T) {
		q4 := p.quoteVersion(tc.quote, chain, 4)
		parsed, err := ParseQuote(q4)
		if err != nil || parsed.Header.Version != 4 || parsed.CertDataType != 6 {
			t.Fatalf("v4 quote: %v", err)
		}
		expect(t, q4, p.bundle(realBundle, tc.at), p.roots(), tc.TCBStatus)
	})
	t.Run("pinned Intel root refuses the test root", func(t *testing.T) {
		expect(t, q, p.bundle(realBundle, tc.at), nil, "pck_chain")
	})
	t.Run("pinned Intel root refuses collateral signed under the test root", func(t *testing.T) {
		// A genuine Intel quote, collateral re-signed by the test PKI.
		expect(t, tc.quote, p.bundle(realBundle, tc.at), nil, "tcb_info_chain")
	})
	t.Run("pinned Intel root refuses the test PCK chain", func(t *testing.T) {
		// Real Intel collateral, test PCK chain.
		expect(t, q, realBundle, nil, "pck_chain")
	})
	t.Run("revoked PCK", func(t *testing.T) {
		bd := p.bundle(realBundle, tc.at)
		bd.PCKCRL = p.crl(p.pckCA, p.caKey, tc.at, p.tcbSig, p.pck)
		expect(t, q, bd, p.roots(), "pck_revoked")
	})
	t.Run("revoked PCK CA", func(t *testing.T) {
		bd := p.bundle(realBundle, tc.at)
		bd.RootCACRL = p.crl(p.root, p.rootKey, tc.at, p.pckCA)
		expect(t, q, bd, p.roots(), "ca_revoked")
	})
	t.Run("PCK CRL signed by the wrong key", func(t *testing.T) {
		bd := p.bundle(realBundle, tc.at)
		bd.PCKCRL = p.crl(p.pckCA, newKey(t), tc.at) // right issuer name, wrong key
		expect(t, q, bd, p.roots(), "pck_crl")
	})
	t.Run("root CRL signed by the wrong key", func(t *testing.T) {
		bd := p.bundle(realBundle, tc.at)
		bd.RootCACRL = p.crl(p.root, newKey(t), tc.at)
		expect(t, q, bd, p.roots(), "root_crl")
	})
	t.Run("evidence carries its own root", func(t *testing.T) {
		fake := newTestPKI(t, realPCK) // same names, other keys
		q2 := fake.quote(tc.quote, pemChain(fake.pck, fake.pckCA, fake.root))
		expect(t, q2, p.bundle(realBundle, tc.at), p.roots(), "pck_chain")
	})
	t.Run("chain without its root", func(t *testing.T) {
		expect(t, p.quote(tc.quote, pemChain(p.pck, p.pckCA)), p.bundle(realBundle, tc.at), p.roots(), "pck_chain")
	})
	t.Run("TCB info signed by a PCK key", func(t *testing.T) {
		bd := p.bundle(realBundle, tc.at)
		bd.TCBInfoSignature = hex.EncodeToString(rawSign(t, p.pckKey, []byte(bd.TCBInfo)))
		bd.TCBInfoIssuerChain = pemChain(p.pck, p.pckCA, p.root)
		expect(t, q, bd, p.roots(), "tcb_info_chain")
	})
	t.Run("QE report signed by another key", func(t *testing.T) {
		b := bytes.Clone(q)
		qq, _ := ParseQuote(b)
		off := bytes.Index(b, qq.QEReportRaw) + 384
		copy(b[off:], rawSign(t, newKey(t), qq.QEReportRaw))
		expect(t, b, p.bundle(realBundle, tc.at), p.roots(), "qe_report_signature")
	})
	t.Run("QE identity for another MRSIGNER", func(t *testing.T) {
		rb := realBundle
		rb.QEIdentity = strings.Replace(rb.QEIdentity, `"mrsigner":"8C4F`, `"mrsigner":"9C4F`, 1)
		expect(t, q, p.bundle(rb, tc.at), p.roots(), "qe_identity_mismatch")
	})
	t.Run("QE out of date converges", func(t *testing.T) {
		// Raise the UpToDate QE level above the QE's ISVSVN: the next
		// level is OutOfDate, which turns the platform's
		// ConfigurationAndSWHardeningNeeded into OutOfDateConfigurationNeeded.
		rb := realBundle
		rb.QEIdentity = strings.Replace(rb.QEIdentity, `{"tcb":{"isvsvn":8}`, `{"tcb":{"isvsvn":99}`, 1)
		expect(t, q, p.bundle(rb, tc.at), p.roots(), "OutOfDateConfigurationNeeded")
	})
	t.Run("QE revoked", func(t *testing.T) {
		rb := realBundle
		rb.QEIdentity = strings.Replace(rb.QEIdentity, `"tcbStatus":"UpToDate"`, `"tcbStatus":"Revoked"`, 1)
		expect(t, q, p.bundle(rb, tc.at), p.roots(), "tcb_revoked")
	})
	t.Run("platform level revoked", func(t *testing.T) {
		rb := realBundle
		rb.TCBInfo = strings.Replace(rb.TCBInfo, `"tcbStatus":"ConfigurationAndSWHardeningNeeded"`, `"tcbStatus":"Revoked"`, 1)
		expect(t, q, p.bundle(rb, tc.at), p.roots(), "tcb_revoked")
	})
	t.Run("no matching platform level", func(t *testing.T) {
		rb := realBundle
		rb.TCBInfo = strings.ReplaceAll(rb.TCBInfo, `"pcesvn":`, `"pcesvn":9`)
		expect(t, q, p.bundle(rb, tc.at), p.roots(), "TCB_LEVEL_NOT_SUPPORTED")
	})
	t.Run("wrong PCE ID", func(t *testing.T) {
		rb := realBundle
		rb.TCBInfo = strings.Replace(rb.TCBInfo, `"pceId":"0000"`, `"pceId":"0001"`, 1)
		expect(t, q, p.bundle(rb, tc.at), p.roots(), "tcb_info_pceid")
	})
}
