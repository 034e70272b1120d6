package tsm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/internal/shareddata"
)

// fakeTree plays the kernel's configfs-tsm report tree in memory, with the
// kernel's rules: attributes appear on mkdir under the root; every write
// bumps generation; privlevel must be within [privlevel_floor, 3]; reading
// outblob generates the report from inblob and privlevel, and fails for a
// privlevel below the floor, as the SNP firmware refuses a report for a
// more privileged VMPL than the guest's.
type fakeTree struct {
	root     string
	provider string
	floor    int    // -1: no privlevel attributes (TDX)
	out      []byte // the evidence returned, with the written report data and VMPL filled in for SNP
	aux      []byte // auxblob; nil: no auxblob attribute
	// raceWrites simulates other writers: each of the first raceWrites
	// reports gets one foreign write after ours.
	raceWrites int
	// block, when set, holds outblob reads until it is closed; reading is
	// signalled when such a read starts.
	block   chan struct{}
	reading chan struct{}

	mu        sync.Mutex
	entries   map[string]*entry
	made      []string
	removed   chan string
	privWrite []int
}

type entry struct {
	gen       uint64
	inblob    []byte
	privlevel int
}

func newTree(t *testing.T, provider string, floor int, out, aux []byte) *fakeTree {
	return &fakeTree{root: "/sys/kernel/config/tsm/report", provider: provider, floor: floor, out: out, aux: aux,
		entries: map[string]*entry{}, removed: make(chan string, 16)}
}

func (k *fakeTree) attester() *Attester { return &Attester{Root: k.root, fs: k} }

func (k *fakeTree) Mkdir(dir string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if filepath.Dir(dir) != k.root {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrNotExist}
	}
	if _, ok := k.entries[dir]; ok {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
	}
	k.entries[dir] = &entry{}
	k.made = append(k.made, dir)
	return nil
}

func (k *fakeTree) Rmdir(dir string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.entries[dir]; !ok {
		return &fs.PathError{Op: "rmdir", Path: dir, Err: fs.ErrNotExist}
	}
	delete(k.entries, dir)
	k.removed <- dir
	return nil
}

func (k *fakeTree) lookup(path string) (*entry, string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[filepath.Dir(path)]
	if !ok {
		return nil, "", &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return e, filepath.Base(path), nil
}

func (k *fakeTree) WriteFile(path string, data []byte) error {
	e, name, err := k.lookup(path)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch name {
	case "inblob":
		if len(data) > 64 {
			return &fs.PathError{Op: "write", Path: path, Err: syscall.EINVAL}
		}
		e.inblob = append([]byte(nil), data...)
	case "privlevel":
		if k.floor < 0 {
			return &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || v < k.floor || v > 3 {
			return &fs.PathError{Op: "write", Path: path, Err: syscall.EINVAL}
		}
		e.privlevel = v
		k.privWrite = append(k.privWrite, v)
	default:
		return &fs.PathError{Op: "write", Path: path, Err: syscall.EACCES}
	}
	e.gen++
	if k.raceWrites > 0 && name == "inblob" {
		k.raceWrites--
		e.gen++ // another process wrote an attribute of our report
	}
	return nil
}

func (k *fakeTree) ReadFile(path string) ([]byte, error) {
	e, name, err := k.lookup(path)
	if err != nil {
		return nil, err
	}
	if name == "outblob" && k.block != nil {
		k.reading <- struct{}{}
		<-k.block
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch name {
	case "provider":
		return []byte(k.provider + "\n"), nil
	case "generation":
		return []byte(strconv.FormatUint(e.gen, 10) + "\n"), nil
	case "privlevel_floor":
		if k.floor < 0 {
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return []byte(strconv.Itoa(k.floor) + "\n"), nil
	case "outblob":
		if k.floor > 0 && e.privlevel < k.floor {
			return nil, &fs.PathError{Op: "read", Path: path, Err: syscall.EINVAL}
		}
		out := append([]byte(nil), k.out...)
		if k.provider == "sev_guest" {
			copy(out[0x50:0x90], e.inblob)
			binary.LittleEndian.PutUint32(out[0x30:], uint32(e.privlevel))
		}
		return out, nil
	case "auxblob":
		if k.aux == nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return append([]byte(nil), k.aux...), nil
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

// settled checks that every report directory made was removed.
func (k *fakeTree) settled(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.entries) != 0 {
		t.Fatalf("%d report directories left (made %v)", len(k.entries), k.made)
	}
}

func readShared(t *testing.T, elem ...string) []byte {
	b, err := os.ReadFile(shareddata.Require(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snpTree serves the real trustee Milan report; aux is its certificate table
// unless noAux.
func snpTree(t *testing.T, floor int, noAux bool) (*fakeTree, [64]byte) {
	report := readShared(t, "attestation", "snp", "trustee_milan.report.bin")
	var aux []byte
	if !noAux {
		var err error
		if aux, err = snp.TableFromCerts(readShared(t, "attestation", "snp", "trustee_milan.vcek.der"), nil); err != nil {
			t.Fatal(err)
		}
	}
	var rd [64]byte
	copy(rd[:], "ppml configfs-tsm test")
	return newTree(t, "sev_guest", floor, report, aux), rd
}

func TestSNPEvidenceAtVMPL0(t *testing.T) {
	k, rd := snpTree(t, 0, false)
	ev, err := k.attester().Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Platform != attest.PlatformSNP || !bytes.Equal(ev.Data[0x50:0x90], rd[:]) || !bytes.Equal(ev.Aux, k.aux) {
		t.Fatal("evidence is not the kernel's outblob/auxblob")
	}
	if tab, err := snp.ParseCertTable(ev.Aux); err != nil || tab.Get(snp.GUIDVCEK) == nil {
		t.Fatalf("auxblob has no VCEK: %v", err)
	}
	if len(k.privWrite) != 0 {
		t.Fatalf("privlevel written %v at floor 0", k.privWrite)
	}
	if len(k.made) != 1 {
		t.Fatalf("made %v", k.made)
	}
	k.settled(t)
}

// TestSNPEvidenceAboveVMPL0: under an SVSM the guest runs at VMPL 2; the
// request must ask for privlevel 2, or the kernel refuses it.
func TestSNPEvidenceAboveVMPL0(t *testing.T) {
	k, rd := snpTree(t, 2, false)
	ev, err := k.attester().Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.privWrite) != 1 || k.privWrite[0] != 2 {
		t.Fatalf("privlevel writes %v, want [2]", k.privWrite)
	}
	if vmpl := binary.LittleEndian.Uint32(ev.Data[0x30:]); vmpl != 2 {
		t.Fatalf("report VMPL %d", vmpl)
	}
	k.settled(t)

	// The fake is strict: without the privlevel write the kernel refuses.
	var e entry
	k.entries["/sys/kernel/config/tsm/report/x"] = &e
	if _, err := k.ReadFile("/sys/kernel/config/tsm/report/x/outblob"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("outblob at privlevel 0 with floor 2: %v", err)
	}
	delete(k.entries, "/sys/kernel/config/tsm/report/x")

	k.floor = 4
	if _, err := k.attester().Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "privlevel_floor is 4") {
		t.Fatalf("floor above 3: %v", err)
	}
}

// TestSNPEvidenceEmptyAuxblob: when the host supplies no certificates,
// auxblob is empty (or absent); the evidence carries none and the verifier
// must fetch the VCEK.
func TestSNPEvidenceEmptyAuxblob(t *testing.T) {
	for _, aux := range [][]byte{{}, nil} {
		k, rd := snpTree(t, 0, true)
		k.aux = aux
		ev, err := k.attester().Evidence(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Aux != nil {
			t.Fatalf("aux %x", ev.Aux)
		}
		v := &snp.Verifier{}
		if _, err := v.Verify(context.Background(), ev, attest.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "vcek_missing") {
			t.Fatalf("a verifier without a certificate source: %v", err)
		}
		k.settled(t)
	}
}

func TestTDXEvidence(t *testing.T) {
	for _, f := range []string{"phala_tdx_v4.quote.bin", "gotdx_v5_sample.quote.bin"} {
		q := readShared(t, "attestation", "tdx", f)
		off := 48 + 520
		if q[0] == 5 {
			off += 6
		}
		var rd [64]byte
		copy(rd[:], q[off:])
		k := newTree(t, "tdx_guest", -1, q, nil)
		ev, err := k.attester().Evidence(context.Background(), rd)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if ev.Platform != attest.PlatformTDX || ev.Aux != nil || len(k.privWrite) != 0 {
			t.Fatalf("%s: %+v", f, ev.Platform)
		}
		// Another report data is caught by the echo check.
		rd[0] ^= 1
		if _, err := k.attester().Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "does not carry the report data") {
			t.Fatalf("%s: report data mismatch: %v", f, err)
		}
		k.settled(t)
	}
}

// TestGenerationRace: a foreign write between ours and our reads makes the
// report untrustworthy; the attester retries in a new directory and gives
// up after a few races.
func TestGenerationRace(t *testing.T) {
	k, rd := snpTree(t, 2, false)
	k.raceWrites = 1
	if _, err := k.attester().Evidence(context.Background(), rd); err != nil {
		t.Fatalf("one race, then a clean attempt: %v", err)
	}
	if len(k.made) != 2 {
		t.Fatalf("attempts %d, want 2", len(k.made))
	}
	k.settled(t)

	k, rd = snpTree(t, 2, false)
	k.raceWrites = 100
	_, err := k.attester().Evidence(context.Background(), rd)
	if !errors.Is(err, ErrGenerationRace) || !strings.Contains(err.Error(), "want 2") {
		t.Fatalf("got %v, want a generation race after our 2 writes", err)
	}
	if len(k.made) != attempts {
		t.Fatalf("attempts %d, want %d", len(k.made), attempts)
	}
	k.settled(t)
}

// TestContext: a cancelled context makes no report; one cancelled (or past
// its deadline) while the kernel generates the report returns at once, and
// the report directory is removed when the kernel is done.
func TestContext(t *testing.T) {
	k, rd := snpTree(t, 0, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.attester().Evidence(ctx, rd); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if len(k.made) != 0 {
		t.Fatalf("report made with a cancelled context: %v", k.made)
	}

	for _, deadline := range []bool{false, true} {
		k, rd := snpTree(t, 0, false)
		k.block, k.reading = make(chan struct{}), make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		if deadline {
			ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := k.attester().Evidence(ctx, rd)
			errc <- err
		}()
		<-k.reading // the kernel is generating the report
		if !deadline {
			cancel()
		}
		var err error
		select {
		case err = <-errc:
		case <-time.After(30 * time.Second):
			t.Fatal("Evidence still waits for the kernel after the context ended")
		}
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			t.Fatalf("deadline=%v: got %v, want %v", deadline, err, ctx.Err())
		}
		close(k.block) // the kernel finishes the report
		select {
		case <-k.removed:
		case <-time.After(30 * time.Second):
			t.Fatal("the abandoned report directory was not removed")
		}
		k.settled(t)
		cancel()
	}
}

func TestProviderChecks(t *testing.T) {
	k, rd := snpTree(t, 0, false)
	k.provider = "arm_cca_guest"
	if _, err := k.attester().Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "arm_cca_guest") {
		t.Errorf("unknown provider: %v", err)
	}
	k.provider = "sev_guest"
	a := k.attester()
	a.Provider = "tdx_guest"
	if _, err := a.Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "want \"tdx_guest\"") {
		t.Errorf("provider mismatch: %v", err)
	}
	k.settled(t)
}

// TestRealFileSystem runs the os-backed tree operations on a directory: a
// missing configfs is reported as such, and attributes are written whole.
func TestRealFileSystem(t *testing.T) {
	_, err := (&Attester{Root: filepath.Join(t.TempDir(), "missing")}).Evidence(context.Background(), [64]byte{})
	if err == nil || !strings.Contains(err.Error(), "create report") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no configfs: %v", err)
	}
	var c osConfigfs
	dir := filepath.Join(t.TempDir(), "r")
	if err := c.Mkdir(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "inblob")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFile(p, []byte("0123")); err != nil {
		t.Fatal(err)
	}
	if b, err := c.ReadFile(p); err != nil || string(b) != "0123" {
		t.Fatalf("%q %v", b, err)
	}
	if err := c.WriteFile(filepath.Join(dir, "nope"), []byte("x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("write to a missing attribute: %v", err)
	}
	os.Remove(p)
	if err := c.Rmdir(dir); err != nil {
		t.Fatal(err)
	}
}
