package evidencefile

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/ccel"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
)

// Inspection is every parsed field of a piece of evidence, for display. It
// is the result of parsing only: nothing in it has been verified.
type Inspection struct {
	Platform attest.Platform `json:"platform"`
	Verified bool            `json:"verified"` // always false: inspect does not verify
	Backend  string          `json:"backend,omitempty"`
	// Exactly one of these is set.
	Quote *dcap.Quote `json:"quote,omitempty"`
	// EventLog is the TDX event log that came with a quote, parsed and
	// replayed; EventLogError says why it does not parse.
	EventLog      *EventLogFields `json:"event_log,omitempty"`
	EventLogError string          `json:"event_log_error,omitempty"`

	SNP       *SNPFields   `json:"snp_report,omitempty"`
	SNPCerts  []CertFields `json:"snp_certificates,omitempty"`
	Simulated *SimFields   `json:"simulated,omitempty"`
}

// Inspect parses the evidence of f and returns every field.
func Inspect(f *File) (*Inspection, error) {
	in := &Inspection{Platform: f.Platform, Backend: f.Backend}
	switch f.Platform {
	case attest.PlatformSGX, attest.PlatformTDX:
		q, err := dcap.ParseQuote(f.Data)
		if err != nil {
			return nil, err
		}
		if q.Platform() != f.Platform {
			return nil, fmt.Errorf("evidence is labelled %s but holds a %s quote", f.Platform, q.Platform())
		}
		in.Quote = q
		if len(f.EventLog) > 0 {
			in.EventLog, err = eventLogFields(f.EventLog, q)
			if err != nil {
				in.EventLogError = err.Error()
			}
		}
	case attest.PlatformSNP:
		r, err := snp.ParseReport(f.Data)
		if err != nil {
			return nil, err
		}
		t, err := snp.ParseCertTable(f.Aux)
		if err != nil {
			return nil, err
		}
		product := snp.ProductFromCPUID(r.CPUIDFamily, r.CPUIDModel)
		for _, e := range t.Entries {
			cf := certFields(e)
			if cf.Extensions != nil && product == "" {
				product, _ = cf.Extensions.Product()
			}
			in.SNPCerts = append(in.SNPCerts, cf)
		}
		in.SNP = snpFields(r, product)
	case attest.PlatformSim:
		r, err := sim.ParseReport(f.Data)
		if err != nil {
			return nil, err
		}
		in.Simulated = &SimFields{Version: r.Version, Algorithm: r.Algorithm, Flags: r.Flags, Insecure: true,
			Timestamp: r.Timestamp, ReportData: r.ReportData[:], Measurement: r.Measurement[:],
			Signer: r.Signer[:], PlatformKeyID: r.KeyID[:], Signature: r.Signature[:]}
	default:
		return nil, fmt.Errorf("unknown platform %q", f.Platform)
	}
	return in, nil
}

// SimFields are the fields of simulated evidence.
type SimFields struct {
	Version       uint16     `json:"version"`
	Algorithm     uint16     `json:"algorithm"`
	Flags         uint32     `json:"flags"`
	Insecure      bool       `json:"insecure"`
	Timestamp     time.Time  `json:"timestamp"`
	ReportData    attest.Hex `json:"report_data"`
	Measurement   attest.Hex `json:"measurement"`
	Signer        attest.Hex `json:"signer"`
	PlatformKeyID attest.Hex `json:"platform_key_id"`
	Signature     attest.Hex `json:"signature"`
}

// SNPFields are the fields of an SEV-SNP report.
type SNPFields struct {
	Version         uint32      `json:"version"`
	GuestSVN        uint32      `json:"guest_svn"`
	Policy          attest.U64  `json:"policy"`
	PolicyABI       string      `json:"policy_abi"`
	PolicySMT       bool        `json:"policy_smt"`
	PolicyMigrateMA bool        `json:"policy_migrate_ma"`
	PolicyDebug     bool        `json:"policy_debug"`
	PolicySingleSoc bool        `json:"policy_single_socket"`
	FamilyID        attest.Hex  `json:"family_id"`
	ImageID         attest.Hex  `json:"image_id"`
	VMPL            uint32      `json:"vmpl"`
	SignatureAlgo   uint32      `json:"signature_algo"`
	Product         snp.Product `json:"product,omitempty"` // for TCB decoding; from CPUID (v3) or the VCEK
	CurrentTCB      TCBFields   `json:"current_tcb"`
	PlatformInfo    attest.U64  `json:"platform_info"`
	AuthorKeyEn     bool        `json:"author_key_en"`
	MaskChipKey     bool        `json:"mask_chip_key"`
	SigningKey      string      `json:"signing_key"`
	ReportData      attest.Hex  `json:"report_data"`
	Measurement     attest.Hex  `json:"measurement"`
	HostData        attest.Hex  `json:"host_data"`
	IDKeyDigest     attest.Hex  `json:"id_key_digest"`
	AuthorKeyDigest attest.Hex  `json:"author_key_digest"`
	ReportID        attest.Hex  `json:"report_id"`
	ReportIDMA      attest.Hex  `json:"report_id_ma"`
	ReportedTCB     TCBFields   `json:"reported_tcb"`
	CPUIDFamily     uint8       `json:"cpuid_fam_id"`
	CPUIDModel      uint8       `json:"cpuid_mod_id"`
	CPUIDStepping   uint8       `json:"cpuid_step"`
	ChipID          attest.Hex  `json:"chip_id"`
	CommittedTCB    TCBFields   `json:"committed_tcb"`
	CurrentVersion  string      `json:"current_version"`
	CommittedVer    string      `json:"committed_version"`
	LaunchTCB       TCBFields   `json:"launch_tcb"`
	SignatureR      attest.Hex  `json:"signature_r"`
	SignatureS      attest.Hex  `json:"signature_s"`
}

// TCBFields is a TCB_VERSION, raw and decoded.
type TCBFields struct {
	Raw     attest.U64 `json:"raw"`
	Decoded snp.TCB    `json:"decoded"`
}

func tcb(p snp.Product, v uint64) TCBFields {
	return TCBFields{Raw: attest.U64(v), Decoded: snp.DecodeTCB(p, v)}
}

func snpFields(r *snp.Report, p snp.Product) *SNPFields {
	return &SNPFields{
		Version: r.Version, GuestSVN: r.GuestSVN, Policy: attest.U64(r.Policy),
		PolicyABI:       fmt.Sprintf("%d.%d", uint8(r.Policy>>8), uint8(r.Policy)),
		PolicySMT:       r.SMTAllowed(),
		PolicyMigrateMA: r.MigrationAgent(),
		PolicyDebug:     r.Debug(),
		PolicySingleSoc: r.Policy&snp.PolicySingleSock != 0,
		FamilyID:        r.FamilyID[:], ImageID: r.ImageID[:], VMPL: r.VMPL, SignatureAlgo: r.SignatureAlgo,
		Product: p, CurrentTCB: tcb(p, r.CurrentTCB), PlatformInfo: attest.U64(r.PlatformInfo),
		AuthorKeyEn: r.AuthorKeyEn, MaskChipKey: r.MaskChipKey, SigningKey: r.SigningKey.String(),
		ReportData: r.ReportData[:], Measurement: r.Measurement[:], HostData: r.HostData[:],
		IDKeyDigest: r.IDKeyDigest[:], AuthorKeyDigest: r.AuthorKeyDigest[:],
		ReportID: r.ReportID[:], ReportIDMA: r.ReportIDMA[:], ReportedTCB: tcb(p, r.ReportedTCB),
		CPUIDFamily: r.CPUIDFamily, CPUIDModel: r.CPUIDModel, CPUIDStepping: r.CPUIDStepping,
		ChipID: r.ChipID[:], CommittedTCB: tcb(p, r.CommittedTCB),
		CurrentVersion: r.CurrentVersion().String(),
		CommittedVer:   r.CommittedVersion().String(),
		LaunchTCB:      tcb(p, r.LaunchTCB), SignatureR: r.SignatureR[:], SignatureS: r.SignatureS[:],
	}
}

// CertFields describe one certificate table entry.
type CertFields struct {
	GUID       string             `json:"guid"`
	Role       string             `json:"role"`
	Size       int                `json:"size"`
	Error      string             `json:"error,omitempty"`
	Subject    string             `json:"subject,omitempty"`
	Issuer     string             `json:"issuer,omitempty"`
	NotBefore  time.Time          `json:"not_before,omitzero"`
	NotAfter   time.Time          `json:"not_after,omitzero"`
	Extensions *snp.KeyExtensions `json:"amd_extensions,omitempty"`
}

func certFields(e snp.CertEntry) CertFields {
	role := e.GUID.String()
	switch e.GUID {
	case snp.GUIDVCEK:
		role = "VCEK"
	case snp.GUIDVLEK:
		role = "VLEK"
	case snp.GUIDASK:
		role = "ASK/ASVK"
	case snp.GUIDARK:
		role = "ARK (ignored by the verifier)"
	}
	cf := CertFields{GUID: e.GUID.String(), Role: role, Size: len(e.Data)}
	c, err := x509.ParseCertificate(e.Data)
	if err != nil {
		cf.Error = err.Error()
		return cf
	}
	cf.Subject, cf.Issuer = c.Subject.String(), c.Issuer.String()
	cf.NotBefore, cf.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
	if e.GUID == snp.GUIDVCEK || e.GUID == snp.GUIDVLEK {
		if ext, err := snp.ParseKeyExtensions(c); err == nil {
			cf.Extensions = ext
		} else {
			cf.Error = err.Error()
		}
	}
	return cf
}

// EventLogFields are the parsed records of a TDX event log and what they
// replay to. ReplaysQuote compares with the quote's RTMRs, whose signature
// inspect does not check.
type EventLogFields struct {
	SpecVersion  string           `json:"spec_version"`
	Algorithms   []ccel.Algorithm `json:"algorithms"`
	Length       int              `json:"length"`
	Replay       []attest.Hex     `json:"replay"`
	ReplaysQuote []bool           `json:"replays_quote"`
	Events       []EventFields    `json:"events"`
}

// EventFields is one record of an event log.
type EventFields struct {
	Offset  int    `json:"offset"`
	MRIndex uint32 `json:"mr_index"`
	// RTMR is the register the record extends, absent for MRTD and
	// EV_NO_ACTION records, which extend none.
	RTMR        *int       `json:"rtmr,omitempty"`
	Type        string     `json:"type"`
	SHA384      attest.Hex `json:"sha384,omitempty"`
	Description string     `json:"description,omitempty"`
	DataDigest  bool       `json:"data_is_digested"`
	Size        int        `json:"data_size"`
}

func eventLogFields(b []byte, q *dcap.Quote) (*EventLogFields, error) {
	if q.TD == nil {
		return nil, errors.New("an event log came with an SGX quote: event logs apply to TDX only")
	}
	l, err := ccel.Parse(b)
	if err != nil {
		return nil, err
	}
	out := &EventLogFields{SpecVersion: l.SpecVersion, Algorithms: l.Algorithms, Length: l.Length, Events: []EventFields{}}
	for i, mr := range l.Replay() {
		out.Replay = append(out.Replay, attest.Hex(bytes.Clone(mr[:])))
		out.ReplaysQuote = append(out.ReplaysQuote, bytes.Equal(mr[:], q.TD.RTMR[i]))
	}
	for i := range l.Events {
		e := &l.Events[i]
		ef := EventFields{Offset: e.Offset, MRIndex: e.MRIndex, Type: ccel.TypeName(e.Type), SHA384: e.SHA384(),
			Description: e.Describe(), DataDigest: e.DataIsDigested(), Size: len(e.Data)}
		if r, ok := e.RTMR(); ok {
			ef.RTMR = &r
		}
		out.Events = append(out.Events, ef)
	}
	return out, nil
}
