package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/atomicfile/atomicfiletest"
	"github.com/ppml/ppml/seal/shamir"
)

const dbName = "ppml.db"

func TestFileBootThenReopen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "root.key")
	root, created, err := Boot(dir, &File{Path: key}, dbName)
	if err != nil {
		t.Fatal(err)
	}
	if created == nil || len(root) != KeySize {
		t.Fatalf("first boot: created=%v len=%d", created, len(root))
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Join(dir, StateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seal.json: %v %v", fi, err)
	}
	again, created2, err := Boot(dir, &File{}, dbName)
	if err != nil {
		t.Fatal(err)
	}
	if created2 != nil || !bytes.Equal(again, root) {
		t.Fatal("second boot did not recover the same root key")
	}
}

// TestExistingDataMissingKeyFile is the guard the issue asks for: with data
// in the directory, a missing key file is an error and never a fresh root.
func TestExistingDataMissingKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "root.key")
	if _, _, err := Boot(dir, &File{Path: key}, dbName); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, dbName), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	stBefore, _ := os.ReadFile(filepath.Join(dir, StateFile))
	os.Remove(key)
	_, created, err := Boot(dir, &File{Path: key}, dbName)
	if err == nil || created != nil {
		t.Fatalf("boot with missing key file: err=%v created=%v", err, created)
	}
	if !strings.Contains(err.Error(), "is missing") || !strings.Contains(err.Error(), "restore it") {
		t.Fatalf("unclear error: %v", err)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a new key file was created")
	}
	stAfter, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if !bytes.Equal(stBefore, stAfter) {
		t.Fatal("seal.json changed")
	}

	// Data but seal.json gone too: still refused.
	os.Remove(filepath.Join(dir, StateFile))
	_, created, err = Boot(dir, &File{Path: key}, dbName)
	if err == nil || created != nil || !strings.Contains(err.Error(), "refusing to create a new root key over existing data") {
		t.Fatalf("boot with data and no seal state: err=%v", err)
	}
}

func TestFileWrongKeyAndLooseMode(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "root.key")
	if _, _, err := Boot(dir, &File{Path: key}, dbName); err != nil {
		t.Fatal(err)
	}
	// Another root key in the file: caught by the verifier.
	other := make([]byte, 32)
	rand.Read(other)
	os.WriteFile(key, []byte(strings.Repeat("ab", 32)), 0o600)
	if _, _, err := Boot(dir, &File{}, dbName); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: err = %v", err)
	}
	os.Chmod(key, 0o644)
	if _, _, err := Boot(dir, &File{}, dbName); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose mode: err = %v", err)
	}
	// Init never overwrites an existing key file.
	if _, err := (&File{Path: key}).Init(); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Init over existing key: err = %v", err)
	}
}

func TestSealTypeMismatch(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Boot(dir, &File{Path: filepath.Join(dir, "k")}, dbName); err != nil {
		t.Fatal(err)
	}
	_, _, err := Boot(dir, &Shamir{Threshold: 2, Count: 3}, dbName)
	if err == nil || !strings.Contains(err.Error(), `sealed with "file", not "shamir"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestShamirBootAndUnseal(t *testing.T) {
	dir := t.TempDir()
	root, created, err := Boot(dir, &Shamir{Threshold: 3, Count: 5}, dbName)
	if err != nil {
		t.Fatal(err)
	}
	if created == nil || len(created.Shares) != 5 {
		t.Fatalf("created = %+v", created)
	}
	// The state holds no share and no key.
	stText, _ := os.ReadFile(filepath.Join(dir, StateFile))
	for _, s := range created.Shares {
		if bytes.Contains(stText, []byte(s.String()[len(shamir.Prefix):])) {
			t.Fatal("seal.json contains a share")
		}
	}
	// Shares travel as text: parse what an operator would type.
	parse := func(idx ...int) []shamir.Share {
		var out []shamir.Share
		for _, i := range idx {
			s, err := shamir.Parse(created.Shares[i].String())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}

	t.Run("K shares", func(t *testing.T) {
		got, c, err := Boot(dir, &Shamir{Shares: parse(4, 0, 2)}, dbName)
		if err != nil || c != nil || !bytes.Equal(got, root) {
			t.Fatalf("K shares: err=%v", err)
		}
	})
	t.Run("no shares: starts sealed", func(t *testing.T) {
		_, _, err := Boot(dir, &Shamir{}, dbName)
		var se *SealedError
		if !errors.As(err, &se) || se.Threshold != 3 || se.Have != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("K-1 shares", func(t *testing.T) {
		_, _, err := Boot(dir, &Shamir{Shares: parse(1, 3)}, dbName)
		var se *SealedError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "2 of 3 unseal shares given; supply 1 more") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("K-1 shares claiming a lower threshold", func(t *testing.T) {
		// Forged shares that say K=2 are refused before combining.
		s := parse(1, 3)
		s = append(s, s[0])
		s[2].X = 9
		for i := range s {
			s[i].Threshold = 2
		}
		_, _, err := Boot(dir, &Shamir{Shares: s}, dbName)
		if err == nil || !strings.Contains(err.Error(), "another server") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong share", func(t *testing.T) {
		s := parse(0, 1, 2)
		s[1].Y[0] ^= 0x80 // a share that parses but is not the one issued
		_, _, err := Boot(dir, &Shamir{Shares: s}, dbName)
		// Refused by its commitment in seal.json before anything is combined.
		if err == nil || !strings.Contains(err.Error(), "share 2 of split") || !strings.Contains(err.Error(), "forged or damaged") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("duplicate share", func(t *testing.T) {
		s := parse(0, 1, 1)
		_, _, err := Boot(dir, &Shamir{Shares: s}, dbName)
		if err == nil || !strings.Contains(err.Error(), "same share") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("share of another server", func(t *testing.T) {
		other, _, err := Boot(t.TempDir(), &Shamir{Threshold: 3, Count: 5}, dbName)
		if err != nil || bytes.Equal(other, root) {
			t.Fatal(err)
		}
		res, _ := (&Shamir{Threshold: 3, Count: 5}).Init()
		s := parse(0, 1)
		s = append(s, res.Shares[2])
		_, _, err = Boot(dir, &Shamir{Shares: s}, dbName)
		if err == nil || !strings.Contains(err.Error(), "belongs to another server or an earlier split") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestTEESeal(t *testing.T) {
	keys := t.TempDir()
	sealing := make([]byte, 16)
	rand.Read(sealing)
	os.WriteFile(filepath.Join(keys, "_sgx_mrenclave"), sealing, 0o600)
	dir := t.TempDir()
	root, created, err := Boot(dir, &TEE{KeyDir: keys}, dbName)
	if err != nil || created == nil {
		t.Fatal(err)
	}
	got, _, err := Boot(dir, &TEE{KeyDir: keys}, dbName)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("reopen: %v", err)
	}
	// Another enclave (another sealing key) cannot recover it.
	sealing[0] ^= 1
	os.WriteFile(filepath.Join(keys, "_sgx_mrenclave"), sealing, 0o600)
	if _, _, err := Boot(dir, &TEE{KeyDir: keys}, dbName); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "different enclave") {
		t.Fatalf("other sealing key: err = %v", err)
	}
	// Outside an enclave the key file is missing.
	if _, _, err := Boot(dir, &TEE{KeyDir: t.TempDir()}, dbName); err == nil || !strings.Contains(err.Error(), "not running inside a Gramine SGX enclave") {
		t.Fatalf("no sealing key: err = %v", err)
	}
	if _, _, err := Boot(dir, &TEE{KeyDir: keys, KeyName: "_sgx_mrsigner"}, dbName); err == nil {
		t.Fatal("key name mismatch accepted")
	}
}

func TestLoadStateRejectsBadRecords(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field":              `{"version":1,"type":"file","verifier":"` + strings.Repeat("A", 43) + `=","extra":1}`,
		"bad type":                   `{"version":1,"type":"hsm","verifier":"` + strings.Repeat("A", 43) + `="}`,
		"bad version":                `{"version":3,"type":"file","verifier":"` + strings.Repeat("A", 43) + `="}`,
		"commitments on a file seal": `{"version":2,"type":"file","verifier":"` + strings.Repeat("A", 43) + `=","split_id":"00112233","share_commitments":[]}`,
		"too few commitments":        `{"version":2,"type":"shamir","threshold":2,"shares":3,"verifier":"` + strings.Repeat("A", 43) + `=","split_id":"00112233","share_commitments":["` + strings.Repeat("ab", 32) + `"]}`,
		"bad split id":               `{"version":2,"type":"shamir","threshold":2,"shares":1,"verifier":"` + strings.Repeat("A", 43) + `=","split_id":"0011","share_commitments":["` + strings.Repeat("ab", 32) + `"]}`,
		"no verifier":                `{"version":1,"type":"file"}`,
		"not json":                   `seal`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, StateFile), []byte(body), 0o600)
		if _, err := LoadState(dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestWriteFailuresLeaveNothing makes the key file and seal.json writes fail
// part-way (file size limit): no half-written root key or sealed state is
// left, and an existing seal.json is never replaced.
func TestWriteFailuresLeaveNothing(t *testing.T) {
	if !atomicfiletest.Child(t) {
		return
	}
	dir := t.TempDir()
	atomicfiletest.LimitFileSize(t, 40)
	key := filepath.Join(dir, "root.key")
	if _, err := (&File{Path: key}).Init(); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("key file write past the limit: %v", err)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed Init left the key file: %v", err)
	}
	st, err := newState(TypeFile, make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveState(dir, st); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("seal.json write past the limit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed SaveState left seal.json: %v", err)
	}
	atomicfiletest.NoTemporaries(t, dir)

	old := []byte("{}\n")
	if err := os.WriteFile(filepath.Join(dir, StateFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(dir, st); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("SaveState over an existing seal.json: %v", err)
	}
	atomicfiletest.Unchanged(t, filepath.Join(dir, StateFile), old)
}

// TestShamirVersion1UpgradedAfterUnseal: a seal.json written before share
// commitments still unseals with its shares (an unkeyed check only);
// UpgradeShamir then commits to every share of the split, from the K that
// unsealed, and forged shares are refused from then on.
func TestShamirVersion1UpgradedAfterUnseal(t *testing.T) {
	dir := t.TempDir()
	root, created, err := Boot(dir, &Shamir{Threshold: 3, Count: 5}, dbName)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite seal.json as version 1 wrote it.
	st := *created.State
	st.Version, st.SplitID, st.ShareCommitments = 1, "", nil
	b, _ := json.Marshal(&st)
	os.WriteFile(filepath.Join(dir, StateFile), b, 0o600)
	v1, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	forged := created.Shares[4]
	forged.Y = bytes.Clone(forged.Y)
	forged.Y[3] ^= 1
	if err := v1.CheckShare(forged); err != nil {
		t.Fatalf("version 1 cannot tell a forged share: %v", err)
	}
	got, _, err := Boot(dir, &Shamir{Shares: created.Shares[1:4]}, dbName)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("version 1 unseal: %v", err)
	}
	up, err := UpgradeShamir(dir, v1, created.Shares[1:4])
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadState(dir)
	if err != nil || again.Version != 2 || len(again.ShareCommitments) != 5 || up.SplitID != again.SplitID {
		t.Fatalf("upgraded state: %+v %v", again, err)
	}
	for _, sh := range created.Shares {
		if err := again.CheckShare(sh); err != nil {
			t.Fatalf("genuine share %d refused after upgrade: %v", sh.X, err)
		}
	}
	if err := again.CheckShare(forged); err == nil {
		t.Fatal("forged share accepted after upgrade")
	}
	if got, _, err := Boot(dir, &Shamir{Shares: []shamir.Share{created.Shares[0], created.Shares[4], created.Shares[2]}}, dbName); err != nil || !bytes.Equal(got, root) {
		t.Fatalf("unseal after upgrade: %v", err)
	}
}

// FuzzParseState: seal.json is read from a disk the server does not trust
// with secrets; its parser never panics, and what it accepts survives a
// round trip and never lets CheckShare panic.
func FuzzParseState(f *testing.F) {
	res, _ := (&Shamir{Threshold: 2, Count: 3}).Init()
	good, _ := json.Marshal(res.State)
	f.Add(good)
	f.Add([]byte(`{"version":1,"type":"file","verifier":"` + strings.Repeat("A", 43) + `="}`))
	f.Add([]byte(`{"version":2,"type":"shamir","threshold":2,"shares":1,"verifier":"` + strings.Repeat("A", 43) + `=","split_id":"00112233","share_commitments":["` + strings.Repeat("ab", 32) + `"]}`))
	sh := res.Shares[1]
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseState(again); err != nil {
			t.Fatalf("accepted state does not round-trip: %v", err)
		}
		st.CheckShare(sh)
	})
}
