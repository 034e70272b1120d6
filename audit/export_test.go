package audit

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// buildExport writes, in memory, the export of a log of n entries with a
// checkpoint every `every` entries, as the key service's log would: this
// package verifies logs without storing any.
func buildExport(t testing.TB, signer crypto.Signer, n, every int) []byte {
	t.Helper()
	logID := bytes.Repeat([]byte{0x1d}, 16)
	clock := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	rng := rf.NewEmptyRange(0)
	var lines [][]byte
	var prev []byte
	var cps []*TreeHead
	head := func(size int) *TreeHead {
		root := EmptyRoot()
		if size > 0 {
			root, _ = rng.GetRootHash(nil)
		}
		h, err := SignTreeHead(signer, logID, uint64(size), root, clock)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for i := range n {
		clock = clock.Add(time.Second)
		e := Entry{Index: uint64(i), Prev: prev, Time: clock, Type: TypeRelease, Tenant: "hospital-a", Actor: "0123456789abcdef",
			Key: fmt.Sprintf("key-%d", i%2), KeyVersion: 1, Platform: "sim", Decision: Allow}
		enc, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		leaf := LeafHash(enc)
		if err := rng.Append(leaf, nil); err != nil {
			t.Fatal(err)
		}
		prev = leaf
		lines = append(lines, enc)
		if every > 0 && (i+1)%every == 0 {
			cps = append(cps, head(i+1))
		}
	}
	hdr, err := json.Marshal(ExportHeader{Format: ExportFormat, Version: ExportVersion, TreeHead: head(n), Checkpoints: cps})
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Join(append([][]byte{hdr}, lines...), []byte("\n")), '\n')
}

func TestVerifyBuiltExport(t *testing.T) {
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	good := buildExport(t, signer, 9, 4)
	res, err := VerifyExport(bytes.NewReader(good), VerifyOptions{PublicKey: signer.Public()})
	if err != nil || res.Entries != 9 || res.TreeHead.Size != 9 {
		t.Fatalf("%+v %v", res, err)
	}
	bad := bytes.Replace(good, []byte(`"key":"key-1"`), []byte(`"key":"key-0"`), 1)
	_, err = VerifyExport(bytes.NewReader(bad), VerifyOptions{PublicKey: signer.Public()})
	var te *TamperError
	if !errors.As(err, &te) || te.Problems[0].Kind != ProblemModifiedEntry || te.Problems[0].Index != 1 {
		t.Fatalf("edited entry 1: %v", err)
	}
}

func FuzzVerifyExport(f *testing.F) {
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	good := buildExport(f, signer, 7, 3)
	f.Add(good)
	ls := strings.Split(strings.TrimSuffix(string(good), "\n"), "\n")
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	f.Add(join(ls[:4]))
	f.Add(join(append([]string{ls[0]}, ls[2:]...)))
	f.Add([]byte(ls[0] + "\n{\"index\":0}\n"))
	// A gap with a later entry linking across it, and reordered lines.
	relinked := append([]string(nil), ls...)
	var m map[string]any
	json.Unmarshal([]byte(relinked[1+5]), &m)
	m["prev"] = fmt.Sprintf("%x", LeafHash([]byte(ls[1+2])))
	b, _ := json.Marshal(m)
	relinked[1+5] = string(b)
	f.Add(join(append(relinked[:1+3], relinked[1+4:]...)))
	f.Add(join([]string{ls[0], ls[2], ls[1], ls[4], ls[3]}))
	f.Add([]byte("{}"))
	// A format 2 log (chained entries, a v2 head), whole and with a chain field changed.
	v2 := sampleLog(f, 11).fullExport(f)
	f.Add(v2)
	f.Add(bytes.Replace(v2, []byte(`"key_seq":2`), []byte(`"key_seq":3`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := VerifyExport(bytes.NewReader(data), VerifyOptions{PublicKey: signer.Public()})
		if res == nil {
			t.Fatal("nil result")
		}
		if err == nil {
			// Whatever verifies must be a complete log under a valid head.
			if res.TreeHead == nil || res.Entries != res.TreeHead.Size {
				t.Fatalf("verified with %d entries for a head of %v", res.Entries, res.TreeHead)
			}
			return
		}
		var te *TamperError
		if !errors.As(err, &te) || len(te.Problems) == 0 {
			t.Fatalf("error is not a TamperError with problems: %v", err)
		}
	})
}

// What owners and TEEs link to verify the log holds no storage.
func TestLinksNoStorage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "go.etcd.io/bbolt") || strings.HasPrefix(d, "github.com/ppml/ppml/store") || strings.HasPrefix(d, "github.com/ppml/ppml/kms") {
			t.Errorf("audit links %s", d)
		}
	}
}
