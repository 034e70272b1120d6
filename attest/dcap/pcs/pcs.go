// Package pcs holds the Intel Provisioning Certification Service data
// structures DCAP verification needs: TCB info (SGX v2/v3, TDX v3), enclave
// (QE) identity v2, and the SGX extensions of PCK certificates. It parses
// and matches; signature checks live in package dcap.
package pcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ppml/ppml/attest"
)

// TCB statuses as Intel names them, plus TCBLevelNotSupported for "no level
// matches" (Intel's QVL reports it as STATUS_TCB_NOT_SUPPORTED).
const (
	StatusUpToDate                          = "UpToDate"
	StatusSWHardeningNeeded                 = "SWHardeningNeeded"
	StatusConfigurationNeeded               = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	StatusRevoked                           = "Revoked"
	StatusTCBLevelNotSupported              = "TCB_LEVEL_NOT_SUPPORTED"
)

var knownStatus = map[string]bool{
	StatusUpToDate: true, StatusSWHardeningNeeded: true, StatusConfigurationNeeded: true,
	StatusConfigurationAndSWHardeningNeeded: true, StatusOutOfDate: true,
	StatusOutOfDateConfigurationNeeded: true, StatusRevoked: true,
}

// TCBComponent is one SVN of a TCB level.
type TCBComponent struct {
	SVN      uint8  `json:"svn"`
	Category string `json:"category,omitempty"`
	Type     string `json:"type,omitempty"`
}

// TCB is the SVN vector of a platform TCB level.
type TCB struct {
	SGXComponents [16]uint8 `json:"sgx_components"`
	PCESVN        uint16    `json:"pcesvn"`
	// TDXComponents is set for TDX TCB info only.
	TDXComponents *[16]uint8 `json:"tdx_components,omitempty"`
}

// TCBLevel is one entry of a TCB info's tcbLevels.
type TCBLevel struct {
	TCB         TCB       `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// TDXModule is the TDX module signer/attributes of TCB info v3.
type TDXModule struct {
	MRSigner       attest.Hex `json:"mrsigner"`
	Attributes     attest.Hex `json:"attributes"`
	AttributesMask attest.Hex `json:"attributesMask"`
}

// TDXModuleIdentity is one entry of tdxModuleIdentities (TCB info v3).
type TDXModuleIdentity struct {
	ID             string     `json:"id"`
	MRSigner       attest.Hex `json:"mrsigner"`
	Attributes     attest.Hex `json:"attributes"`
	AttributesMask attest.Hex `json:"attributesMask"`
	TCBLevels      []QETCBLvl `json:"tcbLevels"`
}

// TCBInfo is Intel's TCB info for one FMSPC (Appendix A of the PCS spec).
type TCBInfo struct {
	ID                      string              `json:"id"` // "SGX" or "TDX"; v2 has none (SGX)
	Version                 int                 `json:"version"`
	IssueDate               time.Time           `json:"issueDate"`
	NextUpdate              time.Time           `json:"nextUpdate"`
	FMSPC                   attest.Hex          `json:"fmspc"`
	PCEID                   attest.Hex          `json:"pceId"`
	TCBType                 int                 `json:"tcbType"`
	TCBEvaluationDataNumber int                 `json:"tcbEvaluationDataNumber"`
	TDXModule               *TDXModule          `json:"tdxModule,omitempty"`
	TDXModuleIdentities     []TDXModuleIdentity `json:"tdxModuleIdentities,omitempty"`
	TCBLevels               []TCBLevel          `json:"tcbLevels"`
}

type rawComp struct {
	SVN      *int   `json:"svn"`
	Category string `json:"category"`
	Type     string `json:"type"`
}

type rawTCBInfo struct {
	ID                      string              `json:"id"`
	Version                 int                 `json:"version"`
	IssueDate               time.Time           `json:"issueDate"`
	NextUpdate              time.Time           `json:"nextUpdate"`
	FMSPC                   attest.Hex          `json:"fmspc"`
	PCEID                   attest.Hex          `json:"pceId"`
	TCBType                 int                 `json:"tcbType"`
	TCBEvaluationDataNumber int                 `json:"tcbEvaluationDataNumber"`
	TDXModule               *TDXModule          `json:"tdxModule"`
	TDXModuleIdentities     []TDXModuleIdentity `json:"tdxModuleIdentities"`
	TCBLevels               []struct {
		TCB         map[string]json.RawMessage `json:"tcb"`
		TCBDate     time.Time                  `json:"tcbDate"`
		TCBStatus   string                     `json:"tcbStatus"`
		AdvisoryIDs []string                   `json:"advisoryIDs"`
	} `json:"tcbLevels"`
}

// ParseTCBInfo parses the signed tcbInfo JSON object (the exact bytes the
// signature covers). It accepts SGX v2 (sgxtcbcompNNsvn fields), SGX v3 and
// TDX v3 (component arrays).
func ParseTCBInfo(b []byte) (*TCBInfo, error) {
	var r rawTCBInfo
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("tcbInfo JSON: %w", err)
	}
	t := &TCBInfo{ID: r.ID, Version: r.Version, IssueDate: r.IssueDate, NextUpdate: r.NextUpdate,
		FMSPC: r.FMSPC, PCEID: r.PCEID, TCBType: r.TCBType, TCBEvaluationDataNumber: r.TCBEvaluationDataNumber,
		TDXModule: r.TDXModule, TDXModuleIdentities: r.TDXModuleIdentities}
	switch {
	case r.Version == 2 && (r.ID == "" || r.ID == "SGX"):
		t.ID = "SGX"
	case r.Version == 3 && (r.ID == "SGX" || r.ID == "TDX"):
	default:
		return nil, fmt.Errorf("tcbInfo: unsupported id %q version %d", r.ID, r.Version)
	}
	if r.TCBType != 0 {
		return nil, fmt.Errorf("tcbInfo: unsupported tcbType %d", r.TCBType)
	}
	if len(t.FMSPC) != 6 {
		return nil, fmt.Errorf("tcbInfo: fmspc has %d bytes, want 6", len(t.FMSPC))
	}
	if len(t.PCEID) != 2 {
		return nil, fmt.Errorf("tcbInfo: pceId has %d bytes, want 2", len(t.PCEID))
	}
	if t.IssueDate.IsZero() || t.NextUpdate.IsZero() {
		return nil, errors.New("tcbInfo: missing issueDate or nextUpdate")
	}
	if len(r.TCBLevels) == 0 {
		return nil, errors.New("tcbInfo: no tcbLevels")
	}
	if t.ID == "TDX" {
		if t.TDXModule == nil {
			return nil, errors.New("tcbInfo: TDX without tdxModule")
		}
		if err := checkModule(t.TDXModule.MRSigner, t.TDXModule.Attributes, t.TDXModule.AttributesMask); err != nil {
			return nil, fmt.Errorf("tcbInfo tdxModule: %w", err)
		}
		for i, m := range t.TDXModuleIdentities {
			if err := checkModule(m.MRSigner, m.Attributes, m.AttributesMask); err != nil {
				return nil, fmt.Errorf("tcbInfo tdxModuleIdentities[%d]: %w", i, err)
			}
			if len(m.TCBLevels) == 0 {
				return nil, fmt.Errorf("tcbInfo tdxModuleIdentities[%d]: no tcbLevels", i)
			}
			for j, l := range m.TCBLevels {
				if !knownStatus[l.TCBStatus] {
					return nil, fmt.Errorf("tcbInfo tdxModuleIdentities[%d] level %d: unknown tcbStatus %q", i, j, l.TCBStatus)
				}
			}
		}
	}
	for i, rl := range r.TCBLevels {
		l := TCBLevel{TCBDate: rl.TCBDate, TCBStatus: rl.TCBStatus, AdvisoryIDs: rl.AdvisoryIDs}
		if !knownStatus[l.TCBStatus] {
			return nil, fmt.Errorf("tcbInfo level %d: unknown tcbStatus %q", i, l.TCBStatus)
		}
		if err := parseLevelTCB(rl.TCB, t.Version, t.ID == "TDX", &l.TCB); err != nil {
			return nil, fmt.Errorf("tcbInfo level %d: %w", i, err)
		}
		t.TCBLevels = append(t.TCBLevels, l)
	}
	return t, nil
}

func checkModule(mrsigner, attr, mask []byte) error {
	if len(mrsigner) != 48 {
		return fmt.Errorf("mrsigner has %d bytes, want 48", len(mrsigner))
	}
	if len(attr) != 8 || len(mask) != 8 {
		return errors.New("attributes and attributesMask must have 8 bytes")
	}
	return nil
}

func parseLevelTCB(m map[string]json.RawMessage, version int, tdx bool, out *TCB) error {
	pce, ok := m["pcesvn"]
	if !ok {
		return errors.New("missing pcesvn")
	}
	if err := json.Unmarshal(pce, &out.PCESVN); err != nil {
		return fmt.Errorf("pcesvn: %w", err)
	}
	if version == 2 {
		for i := range 16 {
			k := fmt.Sprintf("sgxtcbcomp%02dsvn", i+1)
			v, ok := m[k]
			if !ok {
				return fmt.Errorf("missing %s", k)
			}
			if err := json.Unmarshal(v, &out.SGXComponents[i]); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	}
	if err := comps(m, "sgxtcbcomponents", &out.SGXComponents); err != nil {
		return err
	}
	if tdx {
		var c [16]uint8
		if err := comps(m, "tdxtcbcomponents", &c); err != nil {
			return err
		}
		out.TDXComponents = &c
	}
	return nil
}

func comps(m map[string]json.RawMessage, key string, out *[16]uint8) error {
	v, ok := m[key]
	if !ok {
		return fmt.Errorf("missing %s", key)
	}
	var cs []rawComp
	if err := json.Unmarshal(v, &cs); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if len(cs) != 16 {
		return fmt.Errorf("%s has %d entries, want 16", key, len(cs))
	}
	for i, c := range cs {
		if c.SVN == nil || *c.SVN < 0 || *c.SVN > 255 {
			return fmt.Errorf("%s[%d]: missing or out-of-range svn", key, i)
		}
		out[i] = uint8(*c.SVN)
	}
	return nil
}

// QETCBLvl is one TCB level of an enclave identity or TDX module identity.
type QETCBLvl struct {
	TCB struct {
		ISVSVN uint16 `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// QEIdentity is Intel's enclave identity v2 (Appendix B of the PCS spec) for
// the SGX QE ("QE"), the TD QE ("TD_QE") or the QVE ("QVE").
type QEIdentity struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	IssueDate               time.Time  `json:"issueDate"`
	NextUpdate              time.Time  `json:"nextUpdate"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	MiscSelect              attest.Hex `json:"miscselect"`
	MiscSelectMask          attest.Hex `json:"miscselectMask"`
	Attributes              attest.Hex `json:"attributes"`
	AttributesMask          attest.Hex `json:"attributesMask"`
	MRSigner                attest.Hex `json:"mrsigner"`
	ISVProdID               uint16     `json:"isvprodid"`
	TCBLevels               []QETCBLvl `json:"tcbLevels"`
}

// ParseQEIdentity parses the signed enclaveIdentity JSON object.
func ParseQEIdentity(b []byte) (*QEIdentity, error) {
	q := &QEIdentity{}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(q); err != nil {
		return nil, fmt.Errorf("enclaveIdentity JSON: %w", err)
	}
	if q.Version != 2 {
		return nil, fmt.Errorf("enclaveIdentity: unsupported version %d", q.Version)
	}
	switch q.ID {
	case "QE", "TD_QE", "QVE":
	default:
		return nil, fmt.Errorf("enclaveIdentity: unknown id %q", q.ID)
	}
	if len(q.MiscSelect) != 4 || len(q.MiscSelectMask) != 4 {
		return nil, errors.New("enclaveIdentity: miscselect and miscselectMask must have 4 bytes")
	}
	if len(q.Attributes) != 16 || len(q.AttributesMask) != 16 {
		return nil, errors.New("enclaveIdentity: attributes and attributesMask must have 16 bytes")
	}
	if len(q.MRSigner) != 32 {
		return nil, fmt.Errorf("enclaveIdentity: mrsigner has %d bytes, want 32", len(q.MRSigner))
	}
	if q.IssueDate.IsZero() || q.NextUpdate.IsZero() {
		return nil, errors.New("enclaveIdentity: missing issueDate or nextUpdate")
	}
	if len(q.TCBLevels) == 0 {
		return nil, errors.New("enclaveIdentity: no tcbLevels")
	}
	for i, l := range q.TCBLevels {
		if !knownStatus[l.TCBStatus] {
			return nil, fmt.Errorf("enclaveIdentity level %d: unknown tcbStatus %q", i, l.TCBStatus)
		}
	}
	return q, nil
}

// MatchISVSVN returns the first level (Intel orders them newest first) whose
// isvsvn is at most svn, or nil when none is.
func MatchISVSVN(levels []QETCBLvl, svn uint16) *QETCBLvl {
	for i := range levels {
		if svn >= levels[i].TCB.ISVSVN {
			return &levels[i]
		}
	}
	return nil
}
