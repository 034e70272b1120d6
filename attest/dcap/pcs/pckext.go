package pcs

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// OIDSGXExtensions is the PCK certificate extension holding the platform's
// SGX identity (Intel SGX PCK Certificate and CRL Profile, section 1.5).
var OIDSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

var (
	oidPPID  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB   = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidType  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
)

// PCKExtensions are the parts of the SGX extension verification uses.
type PCKExtensions struct {
	PPID   []byte
	TCB    TCB // SGX components and PCESVN (TDXComponents unset)
	CPUSVN []byte
	PCEID  []byte
	FMSPC  []byte
	// SGXType is 0 Standard, 1 Scalable, 2 Scalable with integrity.
	SGXType int
}

type oidValue struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// ParsePCKExtensions reads the SGX extension of a PCK certificate.
func ParsePCKExtensions(cert *x509.Certificate) (*PCKExtensions, error) {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSGXExtensions) {
			if raw != nil {
				return nil, errors.New("duplicate SGX extension")
			}
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, errors.New("PCK certificate has no SGX extension (OID 1.2.840.113741.1.13.1)")
	}
	return parseSGXExtension(raw)
}

func parseSGXExtension(raw []byte) (*PCKExtensions, error) {
	var items []oidValue
	rest, err := asn1.Unmarshal(raw, &items)
	if err != nil {
		return nil, fmt.Errorf("SGX extension: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("SGX extension: trailing bytes")
	}
	p := &PCKExtensions{}
	seen := map[string]bool{}
	for _, it := range items {
		k := it.ID.String()
		if seen[k] {
			return nil, fmt.Errorf("SGX extension: duplicate %s", k)
		}
		seen[k] = true
		switch {
		case it.ID.Equal(oidPPID):
			if p.PPID, err = octets(it.Value, 16, "PPID"); err != nil {
				return nil, err
			}
		case it.ID.Equal(oidPCEID):
			if p.PCEID, err = octets(it.Value, 2, "PCE-ID"); err != nil {
				return nil, err
			}
		case it.ID.Equal(oidFMSPC):
			if p.FMSPC, err = octets(it.Value, 6, "FMSPC"); err != nil {
				return nil, err
			}
		case it.ID.Equal(oidType):
			var e asn1.Enumerated
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &e); err != nil {
				return nil, fmt.Errorf("SGX extension SGX Type: %w", err)
			}
			p.SGXType = int(e)
		case it.ID.Equal(oidTCB):
			if err := p.parseTCB(it.Value.FullBytes); err != nil {
				return nil, err
			}
		}
	}
	for _, need := range []struct {
		oid asn1.ObjectIdentifier
		n   string
	}{{oidPPID, "PPID"}, {oidTCB, "TCB"}, {oidPCEID, "PCE-ID"}, {oidFMSPC, "FMSPC"}} {
		if !seen[need.oid.String()] {
			return nil, fmt.Errorf("SGX extension: missing %s", need.n)
		}
	}
	return p, nil
}

func octets(v asn1.RawValue, n int, what string) ([]byte, error) {
	var b []byte
	if _, err := asn1.Unmarshal(v.FullBytes, &b); err != nil {
		return nil, fmt.Errorf("SGX extension %s: %w", what, err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("SGX extension %s has %d bytes, want %d", what, len(b), n)
	}
	return b, nil
}

func (p *PCKExtensions) parseTCB(full []byte) error {
	var items []oidValue
	if _, err := asn1.Unmarshal(full, &items); err != nil {
		return fmt.Errorf("SGX extension TCB: %w", err)
	}
	var got [18]bool
	for _, it := range items {
		if len(it.ID) != len(oidTCB)+1 || !asn1.ObjectIdentifier(it.ID[:len(oidTCB)]).Equal(oidTCB) {
			return fmt.Errorf("SGX extension TCB: unexpected OID %s", it.ID)
		}
		n := it.ID[len(oidTCB)]
		if n < 1 || n > 18 {
			return fmt.Errorf("SGX extension TCB: unexpected OID %s", it.ID)
		}
		if got[n-1] {
			return fmt.Errorf("SGX extension TCB: duplicate %s", it.ID)
		}
		got[n-1] = true
		switch {
		case n <= 17:
			var v int
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &v); err != nil {
				return fmt.Errorf("SGX extension TCB %s: %w", it.ID, err)
			}
			if n <= 16 {
				if v < 0 || v > 255 {
					return fmt.Errorf("SGX extension TCB component %d out of range: %d", n, v)
				}
				p.TCB.SGXComponents[n-1] = uint8(v)
			} else {
				if v < 0 || v > 65535 {
					return fmt.Errorf("SGX extension PCESVN out of range: %d", v)
				}
				p.TCB.PCESVN = uint16(v)
			}
		default:
			b, err := octets(it.Value, 16, "CPUSVN")
			if err != nil {
				return err
			}
			p.CPUSVN = b
		}
	}
	for i, ok := range got {
		if !ok {
			return fmt.Errorf("SGX extension TCB: missing %s.%d", oidTCB, i+1)
		}
	}
	return nil
}
