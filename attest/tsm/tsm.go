// Package tsm produces SEV-SNP reports and TDX quotes through the Linux
// configfs-tsm report interface (Documentation/ABI/testing/configfs-tsm):
// make a report directory, write inblob, read provider, outblob and auxblob,
// check that generation did not move (no other writer raced us), remove it.
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

	// kernel stands in for configfs in tests; nil means the real file system.
	kernel kernel
}

// kernel is what configfs does beyond plain files: attributes appear on
// mkdir, and a directory full of attributes can be rmdir'ed.
type kernel interface {
	Mkdir(dir string) error
	Rmdir(dir string) error
	// Wrote is called after a successful attribute write.
	Wrote(path string)
}

type osKernel struct{}

func (osKernel) Mkdir(dir string) error { return os.Mkdir(dir, 0o700) }
func (osKernel) Rmdir(dir string) error { return os.Remove(dir) }
func (osKernel) Wrote(string)           {}

func (a *Attester) root() string {
	if a.Root == "" {
		return DefaultRoot
	}
	return a.Root
}

func (a *Attester) k() kernel {
	if a.kernel == nil {
		return osKernel{}
	}
	return a.kernel
}

// Name implements attest.Attester.
func (a *Attester) Name() string { return "tsm" }

// ErrGenerationRace is returned (wrapped) when another writer changed the
// report's attributes between our write and our reads.
var ErrGenerationRace = errors.New("configfs-tsm report generation changed: another writer raced this request")

// Evidence implements attest.Attester.
func (a *Attester) Evidence(_ context.Context, reportData [attest.ReportDataSize]byte) (ev *attest.Evidence, err error) {
	var name [8]byte
	if _, err := rand.Read(name[:]); err != nil {
		return nil, err
	}
	dir := filepath.Join(a.root(), "ppml-"+hex.EncodeToString(name[:]))
	k := a.k()
	if err := k.Mkdir(dir); err != nil {
		return nil, fmt.Errorf("configfs-tsm: create report %s: %w", dir, err)
	}
	defer func() {
		if rerr := k.Rmdir(dir); rerr != nil && err == nil {
			err = fmt.Errorf("configfs-tsm: remove report %s: %w", dir, rerr)
		}
	}()
	provider, err := readAttr(dir, "provider")
	if err != nil {
		return nil, err
	}
	provider = strings.TrimSpace(provider)
	platform, ok := providers[provider]
	if !ok {
		return nil, fmt.Errorf("configfs-tsm: provider %q is not supported (supported: sev_guest, tdx_guest)", provider)
	}
	if a.Provider != "" && provider != a.Provider {
		return nil, fmt.Errorf("configfs-tsm: provider is %q, want %q", provider, a.Provider)
	}
	gen0, err := readGeneration(dir)
	if err != nil {
		return nil, err
	}
	if err := a.writeAttr(dir, "inblob", reportData[:]); err != nil {
		return nil, err
	}
	want := gen0 + 1 // our write is the only one allowed
	out, err := os.ReadFile(filepath.Join(dir, "outblob"))
	if err != nil {
		return nil, fmt.Errorf("configfs-tsm: read outblob: %w", err)
	}
	var aux []byte
	if platform == attest.PlatformSNP {
		aux, err = os.ReadFile(filepath.Join(dir, "auxblob"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("configfs-tsm: read auxblob: %w", err)
		}
	}
	gen1, err := readGeneration(dir)
	if err != nil {
		return nil, err
	}
	if gen1 != want {
		return nil, fmt.Errorf("%w (generation %d after our write, want %d)", ErrGenerationRace, gen1, want)
	}
	if len(out) == 0 {
		return nil, errors.New("configfs-tsm: empty outblob")
	}
	if err := checkEcho(platform, out, reportData); err != nil {
		return nil, err
	}
	return &attest.Evidence{Platform: platform, Data: out, Aux: aux}, nil
}

func readAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("configfs-tsm: read %s: %w", name, err)
	}
	return string(b), nil
}

func readGeneration(dir string) (uint64, error) {
	s, err := readAttr(dir, "generation")
	if err != nil {
		return 0, err
	}
	g, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("configfs-tsm: generation %q is not a number", strings.TrimSpace(s))
	}
	return g, nil
}

// writeAttr writes an attribute in one write(2): configfs takes each write
// as the whole value.
func (a *Attester) writeAttr(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configfs-tsm: open %s: %w", name, err)
	}
	n, err := f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != len(data) {
		return fmt.Errorf("configfs-tsm: write %s (%d of %d bytes): %v", name, n, len(data), err)
	}
	a.k().Wrote(path)
	return nil
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
