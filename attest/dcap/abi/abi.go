// Package abi parses Intel DCAP quotes (SGX quote v3/v4, TDX quote v4/v5)
// into Go structs. It checks structure only: lengths, versions, types. It
// verifies nothing; that is the job of package dcap.
//
// Layouts follow Intel's "SGX ECDSA Quote Library API" (quote v3) and
// "TDX DCAP Quoting Library API" (quote v4, v5) specifications. Every length
// comes from the quote's own fields. Bytes after the signature data are
// recorded, not parsed: zero padding is what some producers add to quote
// buffers, and whether anything else may follow is the verifier's decision
// (package dcap refuses it), so that inspection can still show such a quote.
package abi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ppml/ppml/attest"
)

// Sizes of fixed parts of a quote.
const (
	HeaderSize           = 48
	EnclaveReportSize    = 384
	TD10ReportSize       = 584
	TD15ReportSize       = 648
	SignatureSize        = 64 // raw r||s ECDSA P-256
	AttestationKeySize   = 64 // raw X||Y P-256 point
	bodyDescriptorSize   = 6
	maxCertificationData = 1 << 20 // far above any real PCK chain; bounds allocations
)

// TEE types in the quote header.
const (
	TEETypeSGX uint32 = 0x00000000
	TEETypeTDX uint32 = 0x00000081
)

// AttestationKeyTypeECDSA256 is ECDSA-256-with-P-256, the only attestation
// key type DCAP quotes use.
const AttestationKeyTypeECDSA256 uint16 = 2

// Body types of a v5 quote's body descriptor.
const (
	BodyTypeSGX  uint16 = 1
	BodyTypeTD10 uint16 = 2
	BodyTypeTD15 uint16 = 3
)

// Certification data types (Intel quote spec, table "Certification Data").
const (
	CertDataPCKChain    uint16 = 5 // PEM PCK leaf ‖ intermediate ‖ root
	CertDataQEReportCer uint16 = 6 // QE report certification data wrapping type 5
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves.
var IntelQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// Header is the 48-byte quote header.
type Header struct {
	Version            uint16 `json:"version"`
	AttestationKeyType uint16 `json:"attestation_key_type"`
	// TEEType is 0 (SGX) or 0x81 (TDX). Quote v3 has a reserved zero field here.
	TEEType uint32 `json:"tee_type"`
	// QESVN and PCESVN are set in quote v3; v4 and v5 reserve these bytes.
	QESVN      uint16     `json:"qe_svn"`
	PCESVN     uint16     `json:"pce_svn"`
	QEVendorID attest.Hex `json:"qe_vendor_id"`
	UserData   attest.Hex `json:"user_data"`
}

// EnclaveReport is an SGX REPORT body (384 bytes): the application
// enclave's report in an SGX quote, and the QE's report in every quote.
type EnclaveReport struct {
	CPUSVN       attest.Hex `json:"cpu_svn"`
	MiscSelect   uint32     `json:"misc_select"`
	ISVExtProdID attest.Hex `json:"isv_ext_prod_id"`
	Attributes   attest.Hex `json:"attributes"`
	MREnclave    attest.Hex `json:"mr_enclave"`
	MRSigner     attest.Hex `json:"mr_signer"`
	ConfigID     attest.Hex `json:"config_id"`
	ISVProdID    uint16     `json:"isv_prod_id"`
	ISVSVN       uint16     `json:"isv_svn"`
	ConfigSVN    uint16     `json:"config_svn"`
	ISVFamilyID  attest.Hex `json:"isv_family_id"`
	ReportData   attest.Hex `json:"report_data"`
}

// Debug reports the DEBUG attribute (bit 1 of ATTRIBUTES.FLAGS).
func (r *EnclaveReport) Debug() bool { return len(r.Attributes) > 0 && r.Attributes[0]&0x02 != 0 }

// TDReport is a TD quote body: TD 1.0 (584 bytes) or TD 1.5 (648 bytes,
// adding TEE_TCB_SVN_2 and MRSERVICETD).
type TDReport struct {
	TEETCBSVN      attest.Hex    `json:"tee_tcb_svn"`
	MRSeam         attest.Hex    `json:"mr_seam"`
	MRSignerSeam   attest.Hex    `json:"mr_signer_seam"`
	SeamAttributes attest.Hex    `json:"seam_attributes"`
	TDAttributes   attest.Hex    `json:"td_attributes"`
	XFAM           attest.Hex    `json:"xfam"`
	MRTD           attest.Hex    `json:"mr_td"`
	MRConfigID     attest.Hex    `json:"mr_config_id"`
	MROwner        attest.Hex    `json:"mr_owner"`
	MROwnerConfig  attest.Hex    `json:"mr_owner_config"`
	RTMR           [4]attest.Hex `json:"rtmr"`
	ReportData     attest.Hex    `json:"report_data"`
	TEETCBSVN2     attest.Hex    `json:"tee_tcb_svn_2,omitempty"`
	MRServiceTD    attest.Hex    `json:"mr_service_td,omitempty"`
}

// Debug reports the TD's DEBUG attribute (TUD.DEBUG, bit 0).
func (r *TDReport) Debug() bool { return len(r.TDAttributes) > 0 && r.TDAttributes[0]&0x01 != 0 }

// Quote is a parsed DCAP quote.
type Quote struct {
	Header Header `json:"header"`
	// BodyType is the v5 body descriptor's type; for v3/v4 it is derived
	// from the TEE type (1 SGX, 2 TD 1.0).
	BodyType uint16         `json:"body_type"`
	SGX      *EnclaveReport `json:"sgx_report,omitempty"`
	TD       *TDReport      `json:"td_report,omitempty"`

	SignatureDataLen uint32     `json:"signature_data_len"`
	Signature        attest.Hex `json:"signature"`
	AttestationKey   attest.Hex `json:"attestation_key"`
	// CertDataType is the outer certification data type: 5 in v3 quotes,
	// 6 (QE report certification data) in v4/v5 quotes.
	CertDataType      uint16        `json:"cert_data_type"`
	QEReport          EnclaveReport `json:"qe_report"`
	QEReportRaw       attest.Hex    `json:"qe_report_raw"`
	QEReportSignature attest.Hex    `json:"qe_report_signature"`
	QEAuthData        attest.Hex    `json:"qe_auth_data"`
	// PCKChain holds the DER certificates of the type-5 certification data,
	// leaf (PCK) first.
	PCKChain []attest.Hex `json:"pck_chain"`

	// Signed is header‖body (‖ body descriptor for v5): the bytes the
	// attestation key signs.
	Signed []byte `json:"-"`

	// Length is the number of bytes the quote occupies: header, body,
	// signature data length and signature data. Trailing is the number of
	// bytes after it in the parsed buffer, and TrailingNonZero the offset
	// of the first non-zero one among them (nil when they are all zero).
	Length          int  `json:"length"`
	Trailing        int  `json:"trailing_bytes,omitempty"`
	TrailingNonZero *int `json:"trailing_non_zero_offset,omitempty"`
}

// CheckTrailing fails when a non-zero byte follows the quote: no signature
// covers it, so it can only be padding, and padding is zero.
func (q *Quote) CheckTrailing() error {
	if q.TrailingNonZero == nil {
		return nil
	}
	return fmt.Errorf("non-zero byte at offset %d after the signature data (the quote ends at offset %d; %d bytes follow it): only zero padding may follow a quote",
		*q.TrailingNonZero, q.Length, q.Trailing)
}

// ReportData returns the 64 bytes of report_data of the SGX or TD body.
func (q *Quote) ReportData() []byte {
	if q.TD != nil {
		return q.TD.ReportData
	}
	return q.SGX.ReportData
}

// IsTDX reports whether the quote is a TDX quote.
func (q *Quote) IsTDX() bool { return q.Header.TEEType == TEETypeTDX }

// Platform is attest.PlatformTDX for TDX quotes, attest.PlatformSGX otherwise.
func (q *Quote) Platform() attest.Platform {
	if q.IsTDX() {
		return attest.PlatformTDX
	}
	return attest.PlatformSGX
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("truncated %s: need %d bytes at offset %d, have %d", what, n, r.off, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) bytes(n int, what string) attest.Hex {
	v := r.take(n, what)
	if v == nil {
		return nil
	}
	return attest.Hex(bytes.Clone(v))
}

func (r *reader) u16(what string) uint16 {
	v := r.take(2, what)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(v)
}

func (r *reader) u32(what string) uint32 {
	v := r.take(4, what)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

// ParseQuote parses an SGX (v3, v4) or TDX (v4, v5) DCAP quote.
func ParseQuote(b []byte) (*Quote, error) {
	r := &reader{b: b}
	q := &Quote{}
	h := &q.Header
	h.Version = r.u16("header version")
	h.AttestationKeyType = r.u16("header attestation key type")
	h.TEEType = r.u32("header TEE type")
	h.QESVN = r.u16("header qe_svn")
	h.PCESVN = r.u16("header pce_svn")
	h.QEVendorID = r.bytes(16, "header QE vendor ID")
	h.UserData = r.bytes(20, "header user data")
	if r.err != nil {
		return nil, r.err
	}
	if h.AttestationKeyType != AttestationKeyTypeECDSA256 {
		return nil, fmt.Errorf("unsupported attestation key type %d (want 2, ECDSA-256-with-P-256)", h.AttestationKeyType)
	}
	switch h.Version {
	case 3:
		if h.TEEType != TEETypeSGX {
			return nil, fmt.Errorf("quote v3 with TEE type %#x: v3 is SGX only", h.TEEType)
		}
		q.BodyType = BodyTypeSGX
	case 4:
		switch h.TEEType {
		case TEETypeSGX:
			q.BodyType = BodyTypeSGX
		case TEETypeTDX:
			q.BodyType = BodyTypeTD10
		default:
			return nil, fmt.Errorf("unknown TEE type %#x", h.TEEType)
		}
	case 5:
		if h.TEEType != TEETypeSGX && h.TEEType != TEETypeTDX {
			return nil, fmt.Errorf("unknown TEE type %#x", h.TEEType)
		}
		q.BodyType = r.u16("body descriptor type")
		size := r.u32("body descriptor size")
		if r.err != nil {
			return nil, r.err
		}
		want := map[uint16]uint32{BodyTypeSGX: EnclaveReportSize, BodyTypeTD10: TD10ReportSize, BodyTypeTD15: TD15ReportSize}[q.BodyType]
		if want == 0 {
			return nil, fmt.Errorf("unknown v5 body type %d", q.BodyType)
		}
		if size != want {
			return nil, fmt.Errorf("v5 body type %d has size %d, want %d", q.BodyType, size, want)
		}
		if (q.BodyType == BodyTypeSGX) != (h.TEEType == TEETypeSGX) {
			return nil, fmt.Errorf("v5 body type %d does not match TEE type %#x", q.BodyType, h.TEEType)
		}
	default:
		return nil, fmt.Errorf("unsupported quote version %d (want 3, 4 or 5)", h.Version)
	}

	switch q.BodyType {
	case BodyTypeSGX:
		q.SGX = parseEnclaveReport(r, "enclave report")
	case BodyTypeTD10, BodyTypeTD15:
		q.TD = parseTDReport(r, q.BodyType == BodyTypeTD15)
	}
	if r.err != nil {
		return nil, r.err
	}
	q.Signed = bytes.Clone(b[:r.off])

	q.SignatureDataLen = r.u32("signature data length")
	sigData := r.take(int(q.SignatureDataLen), "signature data")
	if r.err != nil {
		return nil, r.err
	}
	if err := q.parseSignatureData(sigData); err != nil {
		return nil, fmt.Errorf("signature data: %w", err)
	}
	q.Length = r.off
	q.Trailing = len(b) - r.off
	for i := r.off; i < len(b); i++ {
		if b[i] != 0 {
			q.TrailingNonZero = &i
			break
		}
	}
	return q, nil
}

func (q *Quote) parseSignatureData(b []byte) error {
	r := &reader{b: b}
	q.Signature = r.bytes(SignatureSize, "quote signature")
	q.AttestationKey = r.bytes(AttestationKeySize, "attestation key")
	if q.Header.Version == 3 {
		q.parseQEReportCertData(r)
		q.CertDataType = r.u16("certification data type")
		if r.err == nil && q.CertDataType != CertDataPCKChain {
			return fmt.Errorf("certification data type %d, want 5 (PCK chain)", q.CertDataType)
		}
		q.parsePCKChainData(r)
	} else {
		q.CertDataType = r.u16("certification data type")
		if r.err == nil && q.CertDataType != CertDataQEReportCer {
			return fmt.Errorf("certification data type %d, want 6 (QE report certification data)", q.CertDataType)
		}
		size := r.u32("certification data size")
		inner := r.take(int(size), "QE report certification data")
		if r.err != nil {
			return r.err
		}
		ir := &reader{b: inner}
		q.parseQEReportCertData(ir)
		t := ir.u16("inner certification data type")
		if ir.err == nil && t != CertDataPCKChain {
			return fmt.Errorf("inner certification data type %d, want 5 (PCK chain)", t)
		}
		q.parsePCKChainData(ir)
		if ir.err != nil {
			return ir.err
		}
		if ir.off != len(inner) {
			return fmt.Errorf("%d unexpected bytes after QE report certification data", len(inner)-ir.off)
		}
	}
	if r.err != nil {
		return r.err
	}
	if r.off != len(b) {
		return fmt.Errorf("%d unexpected bytes after certification data (signature data length %d)", len(b)-r.off, len(b))
	}
	return nil
}

func (q *Quote) parseQEReportCertData(r *reader) {
	raw := r.bytes(EnclaveReportSize, "QE report")
	if r.err != nil {
		return
	}
	q.QEReportRaw = raw
	q.QEReport = *parseEnclaveReport(&reader{b: raw}, "QE report")
	q.QEReportSignature = r.bytes(SignatureSize, "QE report signature")
	n := r.u16("QE authentication data size")
	q.QEAuthData = r.bytes(int(n), "QE authentication data")
	if q.QEAuthData == nil && r.err == nil {
		q.QEAuthData = attest.Hex{}
	}
}

func (q *Quote) parsePCKChainData(r *reader) {
	size := r.u32("PCK chain size")
	if r.err != nil {
		return
	}
	if size > maxCertificationData {
		r.err = fmt.Errorf("PCK chain size %d exceeds %d", size, maxCertificationData)
		return
	}
	pemData := r.take(int(size), "PCK chain")
	if r.err != nil {
		return
	}
	certs, err := ParsePEMCertificates(pemData)
	if err != nil {
		r.err = fmt.Errorf("PCK chain: %w", err)
		return
	}
	if len(certs) == 0 {
		r.err = errors.New("PCK chain: no certificate")
		return
	}
	for _, c := range certs {
		q.PCKChain = append(q.PCKChain, attest.Hex(c))
	}
}

func parseEnclaveReport(r *reader, what string) *EnclaveReport {
	e := &EnclaveReport{}
	e.CPUSVN = r.bytes(16, what+" CPUSVN")
	e.MiscSelect = r.u32(what + " MISCSELECT")
	r.take(12, what+" reserved")
	e.ISVExtProdID = r.bytes(16, what+" ISV_EXT_PROD_ID")
	e.Attributes = r.bytes(16, what+" ATTRIBUTES")
	e.MREnclave = r.bytes(32, what+" MRENCLAVE")
	r.take(32, what+" reserved")
	e.MRSigner = r.bytes(32, what+" MRSIGNER")
	r.take(32, what+" reserved")
	e.ConfigID = r.bytes(64, what+" CONFIGID")
	e.ISVProdID = r.u16(what + " ISVPRODID")
	e.ISVSVN = r.u16(what + " ISVSVN")
	e.ConfigSVN = r.u16(what + " CONFIGSVN")
	r.take(42, what+" reserved")
	e.ISVFamilyID = r.bytes(16, what+" ISV_FAMILY_ID")
	e.ReportData = r.bytes(64, what+" REPORTDATA")
	return e
}

func parseTDReport(r *reader, td15 bool) *TDReport {
	t := &TDReport{}
	t.TEETCBSVN = r.bytes(16, "TD report TEE_TCB_SVN")
	t.MRSeam = r.bytes(48, "TD report MRSEAM")
	t.MRSignerSeam = r.bytes(48, "TD report MRSIGNERSEAM")
	t.SeamAttributes = r.bytes(8, "TD report SEAMATTRIBUTES")
	t.TDAttributes = r.bytes(8, "TD report TDATTRIBUTES")
	t.XFAM = r.bytes(8, "TD report XFAM")
	t.MRTD = r.bytes(48, "TD report MRTD")
	t.MRConfigID = r.bytes(48, "TD report MRCONFIGID")
	t.MROwner = r.bytes(48, "TD report MROWNER")
	t.MROwnerConfig = r.bytes(48, "TD report MROWNERCONFIG")
	for i := range t.RTMR {
		t.RTMR[i] = r.bytes(48, fmt.Sprintf("TD report RTMR%d", i))
	}
	t.ReportData = r.bytes(64, "TD report REPORTDATA")
	if td15 {
		t.TEETCBSVN2 = r.bytes(16, "TD report TEE_TCB_SVN_2")
		t.MRServiceTD = r.bytes(48, "TD report MRSERVICETD")
	}
	return t
}

// ParsePEMCertificates strictly decodes a sequence of PEM CERTIFICATE blocks
// and returns their DER bytes. Only whitespace and NUL padding may surround
// the blocks, and base64 must be canonical, so that every byte of the text
// either changes a certificate or makes the input invalid.
func ParsePEMCertificates(b []byte) ([][]byte, error) {
	const begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
	var out [][]byte
	rest := b
	for {
		rest = trimPad(rest)
		if len(rest) == 0 {
			return out, nil
		}
		if !bytes.HasPrefix(rest, []byte(begin)) {
			return nil, fmt.Errorf("certificate %d: expected %q", len(out)+1, begin)
		}
		rest = rest[len(begin):]
		i := bytes.Index(rest, []byte(end))
		if i < 0 {
			return nil, fmt.Errorf("certificate %d: missing %q", len(out)+1, end)
		}
		body := rest[:i]
		rest = rest[i+len(end):]
		b64 := make([]byte, 0, len(body))
		for _, c := range body {
			switch c {
			case '\n', '\r', ' ', '\t':
				continue
			}
			b64 = append(b64, c)
		}
		der := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
		n, err := base64.StdEncoding.Strict().Decode(der, b64)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: base64: %w", len(out)+1, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("certificate %d: empty", len(out)+1)
		}
		out = append(out, der[:n])
	}
}

func trimPad(b []byte) []byte {
	for len(b) > 0 {
		switch b[0] {
		case '\n', '\r', ' ', '\t', 0:
			b = b[1:]
			continue
		}
		break
	}
	return b
}
