// Package tsm produces SEV-SNP reports and TDX quotes through the Linux
// configfs-tsm report interface (Documentation/ABI/testing/configfs-tsm-report):
// make a report directory, write privlevel (SNP guests above VMPL 0) and
// inblob, read outblob and auxblob, check that generation moved only by our
// writes (no other writer raced us), remove the directory.
//
// A guest under an SVSM runs above VMPL 0 and may only ask for reports at
// its own level or above: the kernel publishes that level as
// privlevel_floor, and a request left at the default privlevel 0 fails.
// auxblob may be empty (the host supplies no certificates); the verifier
// then fetches the VCEK from AMD KDS (attest/snp/kds).
package tsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ppml/ppml/attest"
)

// DefaultRoot is the configfs-tsm report directory.
const DefaultRoot = "/sys/kernel/config/tsm/report"

// maxPrivlevel is the highest privilege level configfs-tsm accepts
// (TSM_PRIVLEVEL_MAX: SEV-SNP has VMPL 0-3).
const maxPrivlevel = 3

// attempts is how many report directories a request tries when another
// writer races it; each race costs one report generation.
const attempts = 3

// Providers the kernel names and the platform whose evidence each produces.
var providers = map[string]attest.Platform{
	"sev_guest": attest.PlatformSNP,
	"tdx_guest": attest.PlatformTDX,
}

// Attester requests evidence through configfs-tsm.
type Attester struct {
	// Root replaces /sys/kernel/config/tsm/report (tests).
	Root string
	// Provider, when set, is the only provider accepted ("sev_guest",
	// "tdx_guest"); evidence from any other is refused.
	Provider string

	// fs stands in for configfs in tests; nil means the real file system.
	fs configfs
}

// configfs is what the attester does with the report tree. configfs is not
// a plain file system: attributes appear on mkdir, each write(2) is a whole
// attribute value, reading outblob makes the kernel generate the report,
// and a directory full of attributes is removed with rmdir.
type configfs interface {
	Mkdir(dir string) error
	Rmdir(dir string) error
	ReadFile(path string) ([]byte, error)
	// WriteFile writes data in one write(2).
	WriteFile(path string, data []byte) error
}

type osConfigfs struct{}

func (osConfigfs) Mkdir(dir string) error               { return os.Mkdir(dir, 0o700) }
func (osConfigfs) Rmdir(dir string) error               { return os.Remove(dir) }
func (osConfigfs) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (osConfigfs) WriteFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n, err := f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != len(data) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(data))
	}
	return err
}

func (a *Attester) root() string {
	if a.Root == "" {
		return DefaultRoot
	}
	return a.Root
}

func (a *Attester) cfs() configfs {
	if a.fs == nil {
		return osConfigfs{}
	}
	return a.fs
}

// Name implements attest.Attester.
func (a *Attester) Name() string { return "tsm" }

// ErrGenerationRace is returned (wrapped) when another writer changed the
// report's attributes between our writes and our reads in every attempt.
var ErrGenerationRace = errors.New("configfs-tsm report generation changed: another writer raced this request")

// Evidence implements attest.Attester. It honours ctx: a cancelled or expired
// context ends the call at once, even while the kernel is still generating
// the report (the request then finishes in the background and its report
// directory is removed when it does).
func (a *Attester) Evidence(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	var err error
	for range attempts {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("configfs-tsm: %w", cerr)
		}
		var ev *attest.Evidence
		ev, err = a.request(ctx, reportData)
		if !errors.Is(err, ErrGenerationRace) {
			return ev, err
		}
	}
	return nil, fmt.Errorf("%w (%d attempts)", err, attempts)
}

// request runs one report request on its own goroutine, so that the caller
// can stop waiting for a kernel read that blocks.
func (a *Attester) request(ctx context.Context, rd [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	type result struct {
		ev  *attest.Evidence
		err error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := a.requestSync(ctx, rd)
		done <- result{ev, err}
	}()
	select {
	case r := <-done:
		return r.ev, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("configfs-tsm: report request abandoned: %w", ctx.Err())
	}
}

func (a *Attester) requestSync(ctx context.Context, rd [attest.ReportDataSize]byte) (ev *attest.Evidence, err error) {
	var name [8]byte
	if _, err := rand.Read(name[:]); err != nil {
		return nil, err
	}
	c := a.cfs()
	dir := filepath.Join(a.root(), "ppml-"+hex.EncodeToString(name[:]))
	if err := c.Mkdir(dir); err != nil {
		return nil, fmt.Errorf("configfs-tsm: create report %s: %w", dir, err)
	}
	defer func() {
		if rerr := c.Rmdir(dir); rerr != nil && err == nil {
			err = fmt.Errorf("configfs-tsm: remove report %s: %w", dir, rerr)
		}
	}()
	attr := func(name string) string { return filepath.Join(dir, name) }
	read := func(name string) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("configfs-tsm: %w", err)
		}
		b, err := c.ReadFile(attr(name))
		if err != nil {
			return nil, fmt.Errorf("configfs-tsm: read %s: %w", name, err)
		}
		return b, nil
	}
	writes := uint64(0)
	write := func(name string, data []byte) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("configfs-tsm: %w", err)
		}
		if err := c.WriteFile(attr(name), data); err != nil {
			return fmt.Errorf("configfs-tsm: write %s: %w", name, err)
		}
		writes++
		return nil
	}

	b, err := read("provider")
	if err != nil {
		return nil, err
	}
	provider := strings.TrimSpace(string(b))
	platform, ok := providers[provider]
	if !ok {
		return nil, fmt.Errorf("configfs-tsm: provider %q is not supported (supported: sev_guest, tdx_guest)", provider)
	}
	if a.Provider != "" && provider != a.Provider {
		return nil, fmt.Errorf("configfs-tsm: provider is %q, want %q", provider, a.Provider)
	}
	gen0, err := readNumber(read, "generation")
	if err != nil {
		return nil, err
	}
	floor, err := readNumber(read, "privlevel_floor")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		floor = 0 // TDX, and kernels without privilege levels
	case err != nil:
		return nil, err
	case floor > maxPrivlevel:
		return nil, fmt.Errorf("configfs-tsm: privlevel_floor is %d, above the highest level %d", floor, maxPrivlevel)
	case floor > 0:
		// A guest above VMPL 0 may only ask for reports at its own level.
		if err := write("privlevel", []byte(strconv.FormatUint(floor, 10))); err != nil {
			return nil, err
		}
	}
	if err := write("inblob", rd[:]); err != nil {
		return nil, err
	}
	out, err := read("outblob")
	if err != nil {
		return nil, err
	}
	var aux []byte
	if platform == attest.PlatformSNP {
		aux, err = read("auxblob")
		if errors.Is(err, fs.ErrNotExist) {
			aux, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		if len(aux) == 0 {
			aux = nil // no certificates from the host: the verifier fetches the VCEK
		}
	}
	gen1, err := readNumber(read, "generation")
	if err != nil {
		return nil, err
	}
	if want := gen0 + writes; gen1 != want {
		return nil, fmt.Errorf("%w (generation %d after our %d writes, want %d)", ErrGenerationRace, gen1, writes, want)
	}
	if len(out) == 0 {
		return nil, errors.New("configfs-tsm: empty outblob")
	}
	if err := checkEcho(platform, out, rd); err != nil {
		return nil, err
	}
	if floor > 0 && platform == attest.PlatformSNP {
		if err := checkVMPL(out, floor); err != nil {
			return nil, err
		}
	}
	return &attest.Evidence{Platform: platform, Data: out, Aux: aux}, nil
}

func readNumber(read func(string) ([]byte, error), name string) (uint64, error) {
	b, err := read(name)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("configfs-tsm: %s %q is not a number", name, s)
	}
	return n, nil
}

// checkEcho makes sure the evidence binds the report data we wrote.
func checkEcho(p attest.Platform, out []byte, rd [attest.ReportDataSize]byte) error {
	var off int
	switch p {
	case attest.PlatformSNP:
		off = 0x50 // REPORT_DATA in the attestation report
	case attest.PlatformTDX:
		if len(out) < 2 {
			return errors.New("configfs-tsm: TDX quote too short")
		}
		// TD report body after the 48-byte header; REPORTDATA is at 520 in
		// it. Version 5 quotes put a 6-byte body descriptor before the body.
		switch v := binary.LittleEndian.Uint16(out); v {
		case 4:
			off = 48 + 520
		case 5:
			off = 48 + 6 + 520
		default:
			return fmt.Errorf("configfs-tsm: TDX quote version %d, want 4 or 5", v)
		}
	}
	if len(out) < off+64 {
		return fmt.Errorf("configfs-tsm: outblob is %d bytes, too short for %s evidence", len(out), p)
	}
	if !bytes.Equal(out[off:off+64], rd[:]) {
		return fmt.Errorf("configfs-tsm: the %s evidence does not carry the report data written", p)
	}
	return nil
}

// checkVMPL makes sure an SNP report is for the privilege level requested:
// a report for another VMPL would name other software as its owner.
func checkVMPL(out []byte, want uint64) error {
	if len(out) < 0x34 {
		return fmt.Errorf("configfs-tsm: outblob is %d bytes, too short for an SNP report", len(out))
	}
	if got := binary.LittleEndian.Uint32(out[0x30:]); uint64(got) != want {
		return fmt.Errorf("configfs-tsm: the SNP report is for VMPL %d, but privlevel %d was requested", got, want)
	}
	return nil
}
