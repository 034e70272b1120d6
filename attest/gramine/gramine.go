// Package gramine produces SGX DCAP quotes inside a Gramine enclave through
// Gramine's /dev/attestation pseudo-files: write 64 bytes to
// user_report_data, read quote.
package gramine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ppml/ppml/attest"
)

// DefaultRoot is where Gramine mounts its attestation pseudo-files.
const DefaultRoot = "/dev/attestation"

// Attester reads quotes from Gramine's /dev/attestation.
type Attester struct {
	// Root replaces /dev/attestation (tests).
	Root string
}

// writeAndRead serialises requests within this process: Gramine keeps one
// user_report_data per enclave, so two concurrent callers would otherwise
// get each other's quote.
var writeAndRead sync.Mutex

func (a *Attester) root() string {
	if a.Root == "" {
		return DefaultRoot
	}
	return a.Root
}

// Name implements attest.Attester.
func (a *Attester) Name() string { return "gramine" }

// Type returns Gramine's attestation type ("dcap", "epid" or "none").
func (a *Attester) Type() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.root(), "attestation_type"))
	if err != nil {
		return "", fmt.Errorf("gramine: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Evidence implements attest.Attester.
func (a *Attester) Evidence(_ context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	typ, err := a.Type()
	if err != nil {
		return nil, err
	}
	if typ != "dcap" {
		return nil, fmt.Errorf("gramine: attestation type is %q; ppml needs \"dcap\" (set sgx.remote_attestation = \"dcap\" in the manifest)", typ)
	}
	writeAndRead.Lock()
	defer writeAndRead.Unlock()
	f, err := os.OpenFile(filepath.Join(a.root(), "user_report_data"), os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("gramine: open user_report_data: %w", err)
	}
	n, err := f.Write(reportData[:])
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != len(reportData) {
		return nil, fmt.Errorf("gramine: write user_report_data (%d of 64 bytes): %v", n, err)
	}
	quote, err := os.ReadFile(filepath.Join(a.root(), "quote"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("gramine: no quote file: %w", err)
		}
		return nil, fmt.Errorf("gramine: read quote: %w", err)
	}
	if err := checkEcho(quote, reportData); err != nil {
		return nil, err
	}
	return &attest.Evidence{Platform: attest.PlatformSGX, Data: quote}, nil
}

// SGX quote: 48-byte header, then the 384-byte enclave report whose
// REPORTDATA is its last 64 bytes.
const (
	sgxHeaderSize      = 48
	sgxReportDataStart = sgxHeaderSize + 320
)

// checkEcho makes sure the quote binds the report data we wrote, so that a
// write by another process in between is caught here rather than by the
// verifier's report_data comparison much later.
func checkEcho(quote []byte, rd [attest.ReportDataSize]byte) error {
	if len(quote) < sgxReportDataStart+64 {
		return fmt.Errorf("gramine: quote is %d bytes, too short for an SGX quote", len(quote))
	}
	if v := binary.LittleEndian.Uint16(quote); v != 3 && v != 4 {
		return fmt.Errorf("gramine: quote version %d, want an SGX quote (3 or 4)", v)
	}
	if !bytes.Equal(quote[sgxReportDataStart:sgxReportDataStart+64], rd[:]) {
		return errors.New("gramine: the quote does not carry the report data written (another writer raced us?)")
	}
	return nil
}
