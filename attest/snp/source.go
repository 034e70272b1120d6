package snp

import "context"

// KeyRequest names the certificate that signs a report: what a CertSource
// needs to find a VCEK (chip and TCB) or a VLEK (TCB).
type KeyRequest struct {
	SigningKey SigningKey // SigningKeyVCEK or SigningKeyVLEK
	// Product comes from the report's CPUID fields (version 3 and later);
	// it is empty for version 2 reports, which do not say.
	Product     Product
	ChipID      [64]byte
	ReportedTCB uint64
}

// KeyCertificates are a source's answer: the VCEK or VLEK and, when the
// source has it, the intermediate (ASK or ASVK), DER encoded. Nothing in it
// is trusted: the verifier checks it exactly like certificates that came
// with the evidence, up to the pinned AMD root.
type KeyCertificates struct {
	Leaf         []byte
	Intermediate []byte
}

// CertSource supplies the key certificate for a report whose evidence
// carries none (configfs-tsm's auxblob is empty when the host hands the
// guest no certificates). Fetching and caching live outside this package:
// attest/snp/kds implements it over AMD's Key Distribution Service (or a
// mirror) with a cache, and over an offline bundle.
type CertSource interface {
	KeyCertificates(ctx context.Context, req KeyRequest) (*KeyCertificates, error)
}

// KeyRequestFor is the request for the certificate that signs rep.
func KeyRequestFor(rep *Report) KeyRequest {
	req := KeyRequest{SigningKey: rep.SigningKey, ChipID: rep.ChipID, ReportedTCB: rep.ReportedTCB}
	if rep.Version >= 3 {
		req.Product = ProductFromCPUID(rep.CPUIDFamily, rep.CPUIDModel)
	}
	return req
}
