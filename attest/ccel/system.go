package ccel

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ppml/ppml/attest"
)

// SystemPath is where Linux exposes the CCEL table's log area
// (drivers/acpi/sysfs.c; root-readable).
const SystemPath = "/sys/firmware/acpi/tables/data/CCEL"

// maxArea bounds what ReadLog reads: firmware reserves 64 KiB to 1 MiB.
const maxArea = 16 << 20

// ReadLog reads the log area at path and returns the log cut at its end
// (without the unused rest of the area), or an error satisfying
// errors.Is(err, fs.ErrNotExist) when there is none: not a TDX guest, or a kernel that does not expose it.
func ReadLog(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxArea+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxArea {
		return nil, fmt.Errorf("%s: more than %d bytes", path, maxArea)
	}
	l, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b[:l.Length:l.Length], nil
}

// Attester adds the guest's event log to the TDX evidence its Base
// produces, so that policies can match on what the firmware, boot loader
// and kernel measured into RTMR0-2. When the log cannot be read (no CCEL,
// not readable by this user, or not a log this package parses) the
// evidence goes without it and policies that name event log rules deny.
type Attester struct {
	Base attest.Attester
	// Path replaces SystemPath (tests).
	Path string
}

// WithEventLog wraps a configfs-tsm (or other TDX-capable) attester.
func WithEventLog(a attest.Attester) attest.Attester { return &Attester{Base: a} }

// Name implements attest.Attester: the base attester's name.
func (a *Attester) Name() string { return a.Base.Name() }

// Evidence implements attest.Attester.
func (a *Attester) Evidence(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	ev, err := a.Base.Evidence(ctx, reportData)
	if err != nil || ev.Platform != attest.PlatformTDX || len(ev.EventLog) > 0 {
		return ev, err
	}
	path := a.Path
	if path == "" {
		path = SystemPath
	}
	// Without a readable log that parses, the evidence goes without one: a
	// log the verifier would refuse would cost every release, not only
	// those whose policy looks at events.
	if log, err := ReadLog(path); err == nil {
		ev.EventLog = log
	}
	return ev, nil
}
