// Package evidencefile reads and writes evidence files: the JSON evidence
// container that `ppml attest evidence` writes (docs/formats/evidence.md),
// and raw quote or report files whose platform it recognises from content.
package evidencefile

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
)

// Container format identifiers.
const (
	Format  = "ppml-evidence"
	Version = 1
)

// File is an evidence container.
type File struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Platform attest.Platform `json:"platform"`
	// Backend is the attester that produced the evidence ("sim", "gramine", "tsm").
	Backend string `json:"backend,omitempty"`
	// ReportData is the 64 bytes the producer asked to bind; a verifier
	// compares it with what the evidence actually binds.
	ReportData attest.Hex `json:"report_data,omitempty"`
	Created    time.Time  `json:"created,omitzero"`
	// Data, Aux and EventLog are attest.Evidence's, base64 in JSON.
	Data     []byte `json:"data"`
	Aux      []byte `json:"aux,omitempty"`
	EventLog []byte `json:"event_log,omitempty"`
}

// Evidence returns the evidence the file holds.
func (f *File) Evidence() *attest.Evidence {
	return &attest.Evidence{Platform: f.Platform, Data: f.Data, Aux: f.Aux, EventLog: f.EventLog}
}

// New wraps evidence in a container.
func New(ev *attest.Evidence, backend string, reportData []byte, created time.Time) *File {
	return &File{Format: Format, Version: Version, Platform: ev.Platform, Backend: backend,
		ReportData: reportData, Created: created.UTC().Truncate(time.Second), Data: ev.Data, Aux: ev.Aux, EventLog: ev.EventLog}
}

var knownPlatforms = map[attest.Platform]bool{
	attest.PlatformSGX: true, attest.PlatformTDX: true, attest.PlatformSNP: true, attest.PlatformSim: true,
}

// maxContainer bounds what Parse accepts: real evidence is a few KiB.
const maxContainer = 1 << 20

// IsContainer reports whether b looks like a JSON container (rather than raw evidence).
func IsContainer(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// Parse reads a JSON evidence container.
func Parse(b []byte) (*File, error) {
	if len(b) > maxContainer {
		return nil, fmt.Errorf("evidence container: %d bytes, more than %d", len(b), maxContainer)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("evidence container: %w", err)
	}
	if dec.More() {
		return nil, errors.New("evidence container: trailing data after the JSON object")
	}
	if f.Format != Format {
		return nil, fmt.Errorf("evidence container: format %q, want %q", f.Format, Format)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("evidence container: unsupported version %d (supported: %d)", f.Version, Version)
	}
	if !knownPlatforms[f.Platform] {
		return nil, fmt.Errorf("evidence container: unknown platform %q", f.Platform)
	}
	if len(f.Data) == 0 {
		return nil, errors.New("evidence container: no data")
	}
	if f.ReportData != nil && len(f.ReportData) != attest.ReportDataSize {
		return nil, fmt.Errorf("evidence container: report_data has %d bytes, want %d", len(f.ReportData), attest.ReportDataSize)
	}
	if len(f.Aux) > 0 && f.Platform != attest.PlatformSNP {
		return nil, fmt.Errorf("evidence container: aux is only defined for snp, not %s", f.Platform)
	}
	if len(f.EventLog) > 0 && f.Platform != attest.PlatformTDX {
		return nil, fmt.Errorf("evidence container: event_log is only defined for tdx, not %s", f.Platform)
	}
	return &f, nil
}

// Marshal encodes the container as indented JSON.
func (f *File) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Write stores the container at path atomically: a temporary file in the
// same directory, synced, then renamed over path.
func (f *File) Write(path string) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	return WriteAtomic(path, b, 0o644)
}

// WriteAtomic writes b to path via a synced temporary file and a rename
// (package atomicfile), replacing an existing regular file.
func WriteAtomic(path string, b []byte, perm os.FileMode) error {
	f, err := atomicfile.Create(path, atomicfile.Options{Perm: perm, Overwrite: true})
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Commit()
}

// Intel's QE vendor ID, bytes 12..28 of every DCAP quote header.
var intelQEVendor, _ = hex.DecodeString("939a7233f79c4ca9940a0db3957f0607")

// Sniff names the platform of raw evidence from its content, or says why it
// cannot: DCAP quotes by header version, attestation key type and TEE type;
// SNP reports by size, version and signature algorithm; simulated evidence
// by its magic.
func Sniff(b []byte) (attest.Platform, error) {
	le := binary.LittleEndian
	if sim.IsSimEvidence(b) {
		return attest.PlatformSim, nil
	}
	if len(b) >= 48 && le.Uint16(b[2:]) == 2 && bytes.Equal(b[12:28], intelQEVendor) {
		v, tee := le.Uint16(b), le.Uint32(b[4:])
		switch {
		case (v == 3 || v == 4 || v == 5) && tee == 0:
			return attest.PlatformSGX, nil
		case (v == 4 || v == 5) && tee == 0x81:
			return attest.PlatformTDX, nil
		}
		return "", fmt.Errorf("DCAP quote header with version %d and TEE type %#x is not a known SGX or TDX quote", v, tee)
	}
	if len(b) >= snp.ReportSize && le.Uint16(b[2:]) == 0 && le.Uint32(b[0x34:]) == snp.SigAlgoECDSAP384SHA384 {
		if v := le.Uint32(b); v >= 2 && v <= 5 {
			return attest.PlatformSNP, nil
		}
	}
	return "", errors.New("cannot tell the platform from the content (not a DCAP quote, SEV-SNP report, simulated evidence or evidence container)")
}

// Load reads evidence from a file: a container, or raw evidence of the
// given platform ("" = recognise it from the content).
func Load(path string, platform attest.Platform) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(b, platform)
}

// Decode is Load on bytes.
func Decode(b []byte, platform attest.Platform) (*File, error) {
	if IsContainer(b) {
		f, err := Parse(b)
		if err != nil {
			return nil, err
		}
		if platform != "" && platform != f.Platform {
			return nil, fmt.Errorf("evidence container holds %s evidence, not %s", f.Platform, platform)
		}
		return f, nil
	}
	if platform == "" {
		p, err := Sniff(b)
		if err != nil {
			return nil, fmt.Errorf("%w: pass --platform", err)
		}
		platform = p
	} else if !knownPlatforms[platform] {
		return nil, fmt.Errorf("unknown platform %q (sgx, tdx, snp, sim)", platform)
	}
	return &File{Format: Format, Version: Version, Platform: platform, Data: b}, nil
}
