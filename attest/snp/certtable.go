package snp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// GUID identifies a certificate table entry. It is stored in the table as
// the 16 bytes of its RFC 4122 string form, in order.
type GUID [16]byte

func (g GUID) String() string {
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func mustGUID(s string) GUID {
	var g GUID
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(g[:], []byte(h)); err != nil || len(s) != 36 {
		panic("bad GUID literal " + s)
	}
	return g
}

// GUIDs of the certificate table entries defined by AMD's GHCB specification
// (publication 56421, "SNP Extended Guest Request").
var (
	GUIDVCEK = mustGUID("63da758d-e664-4564-adc5-f4b93be8accd")
	GUIDVLEK = mustGUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
	// GUIDASK is used for the ASK and, in a VLEK table, for the ASVK.
	GUIDASK = mustGUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
	GUIDARK = mustGUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
)

func guidName(g GUID) string {
	switch g {
	case GUIDVCEK:
		return "VCEK"
	case GUIDVLEK:
		return "VLEK"
	case GUIDASK:
		return "ASK"
	case GUIDARK:
		return "ARK"
	}
	return g.String()
}

// CertEntry is one certificate table entry.
type CertEntry struct {
	GUID GUID
	Data []byte // DER, not parsed here
}

// CertTable is the certificate table that travels with an SNP report: the
// hypervisor's extended guest request data, or configfs-tsm's auxblob.
type CertTable struct {
	Entries []CertEntry
}

const certEntrySize = 24 // GUID, offset u32, length u32

// maxCertTableEntries bounds the header walk; real tables have at most a handful.
const maxCertTableEntries = 64

// ParseCertTable parses a certificate table: a header of (GUID, offset,
// length) entries ended by an all-zero entry, followed by the certificates
// at the given offsets from the start of the table. An empty input is an
// empty table.
func ParseCertTable(b []byte) (*CertTable, error) {
	t := &CertTable{}
	if len(b) == 0 {
		return t, nil
	}
	le := binary.LittleEndian
	type hdr struct {
		g           GUID
		off, length uint32
	}
	var hs []hdr
	terminated := false
	for i := 0; i < maxCertTableEntries; i++ {
		p := i * certEntrySize
		if p+certEntrySize > len(b) {
			return nil, fmt.Errorf("certificate table: entry %d truncated (table is %d bytes, no zero terminator)", i, len(b))
		}
		var h hdr
		copy(h.g[:], b[p:p+16])
		h.off = le.Uint32(b[p+16:])
		h.length = le.Uint32(b[p+20:])
		if h.g == (GUID{}) && h.off == 0 && h.length == 0 {
			terminated = true
			break
		}
		hs = append(hs, h)
	}
	if !terminated {
		return nil, fmt.Errorf("certificate table: more than %d entries", maxCertTableEntries)
	}
	headerEnd := uint64(len(hs)+1) * certEntrySize
	seen := map[GUID]bool{}
	for i, h := range hs {
		if h.g == (GUID{}) {
			return nil, fmt.Errorf("certificate table: entry %d has a zero GUID", i)
		}
		if seen[h.g] {
			return nil, fmt.Errorf("certificate table: duplicate %s entry", guidName(h.g))
		}
		seen[h.g] = true
		end := uint64(h.off) + uint64(h.length)
		if uint64(h.off) < headerEnd || end > uint64(len(b)) {
			return nil, fmt.Errorf("certificate table: %s entry [%d, %d) lies outside the certificate area [%d, %d)", guidName(h.g), h.off, end, headerEnd, len(b))
		}
		if h.length == 0 {
			return nil, fmt.Errorf("certificate table: %s entry is empty", guidName(h.g))
		}
		t.Entries = append(t.Entries, CertEntry{GUID: h.g, Data: append([]byte(nil), b[h.off:end]...)})
	}
	return t, nil
}

// Get returns the entry with the given GUID, or nil.
func (t *CertTable) Get(g GUID) []byte {
	for _, e := range t.Entries {
		if e.GUID == g {
			return e.Data
		}
	}
	return nil
}

// Marshal encodes the table in the format ParseCertTable reads.
func (t *CertTable) Marshal() []byte {
	hdrLen := (len(t.Entries) + 1) * certEntrySize
	size := hdrLen
	for _, e := range t.Entries {
		size += len(e.Data)
	}
	out := make([]byte, hdrLen, size)
	le := binary.LittleEndian
	off := hdrLen
	for i, e := range t.Entries {
		p := i * certEntrySize
		copy(out[p:], e.GUID[:])
		le.PutUint32(out[p+16:], uint32(off))
		le.PutUint32(out[p+20:], uint32(len(e.Data)))
		off += len(e.Data)
	}
	for _, e := range t.Entries {
		out = append(out, e.Data...)
	}
	return out
}

// TableFromCerts builds a certificate table from a VCEK or VLEK certificate
// (DER or PEM) and an optional chain file (PEM, as AMD's KDS serves
// cert_chain: intermediate then ARK). The ARK is carried along but the
// verifier ignores it in favour of the pinned one.
func TableFromCerts(leaf, chain []byte) ([]byte, error) {
	lc, err := ParsePEMCerts(leaf)
	if err != nil {
		return nil, fmt.Errorf("VCEK/VLEK certificate: %w", err)
	}
	if len(lc) != 1 {
		return nil, fmt.Errorf("VCEK/VLEK file holds %d certificates, want 1", len(lc))
	}
	t := &CertTable{}
	switch cn := lc[0].Subject.CommonName; cn {
	case "SEV-VLEK":
		t.Entries = append(t.Entries, CertEntry{GUID: GUIDVLEK, Data: lc[0].Raw})
	default:
		// KDS names VCEKs "SEV-VCEK"; accept any other name as a VCEK and
		// let the chain checks decide.
		t.Entries = append(t.Entries, CertEntry{GUID: GUIDVCEK, Data: lc[0].Raw})
	}
	if len(chain) > 0 {
		cc, err := ParsePEMCerts(chain)
		if err != nil {
			return nil, fmt.Errorf("certificate chain: %w", err)
		}
		for _, c := range cc {
			g := GUIDASK
			if bytes.Equal(c.RawIssuer, c.RawSubject) {
				g = GUIDARK
			}
			if t.Get(g) != nil {
				return nil, fmt.Errorf("certificate chain: more than one %s", guidName(g))
			}
			t.Entries = append(t.Entries, CertEntry{GUID: g, Data: c.Raw})
		}
	}
	return t.Marshal(), nil
}
