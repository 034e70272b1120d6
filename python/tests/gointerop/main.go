// Command gointerop is the Go side of the Python SDK's cross-implementation tests
// (python/tests): it writes and reads envelopes with package envelope, reporting failures by
// the errors.Is class of the Go error, makes audit logs as the key service keeps them
// (kms/auditlog in an encrypted store) and verifies exports with package audit; for the serving
// client it writes and reads Arrow streams (arrow-go, package clusterserving) and serving
// records (package record).
// The tests build it once per run; it is not installed and not part of ppml.
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: gointerop encrypt|decrypt|audit-export|audit-verify|audit-proofs|trail-verify ...")
	}
	cmds := map[string]func([]string){
		"encrypt": encrypt, "decrypt": decrypt,
		"audit-export": auditExport, "audit-verify": auditVerify, "audit-proofs": auditProofs,
		"trail-verify":         trailVerify,
		"arrow-decode-request": arrowDecodeRequest, "arrow-encode-ndarray": arrowEncodeNdarray,
		"arrow-encode-result": arrowEncodeResult, "arrow-decode-result": arrowDecodeResult,
		"arrow-write-types": arrowWriteTypes, "arrow-read": arrowRead,
		"record-seal": recordSeal, "record-open": recordOpen,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fail("unknown command " + os.Args[1])
	}
	run(os.Args[2:])
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "gointerop:", msg)
	os.Exit(2)
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

// encrypt -key K -type T -segment-size N [-stream | -two-phase] IN OUT [IN OUT]...
// (-two-phase: a Draft whose length is recorded after the key wrap, flag 0x0001)
func encrypt(args []string) {
	fs := flag.NewFlagSet("encrypt", flag.ExitOnError)
	keyPath := fs.String("key", "", "key file")
	typ := fs.String("type", "bytes", "content type")
	seg := fs.Int("segment-size", envelope.DefaultSegmentSize, "segment size")
	stream := fs.Bool("stream", false, "record the length as unknown")
	twoPhase := fs.Bool("two-phase", false, "record the length after the key wrap (envelope.Draft)")
	fs.Parse(args)
	k, err := keyfile.Load(*keyPath)
	check(err)
	ct, err := envelope.ParseContentType(*typ)
	check(err)
	for i := 0; i+1 < fs.NArg(); i += 2 {
		in, err := os.ReadFile(fs.Arg(i))
		check(err)
		var w *envelope.FileWriter
		if *twoPhase {
			d, err := envelope.NewDraft(&envelope.Options{ContentType: ct, SegmentSize: *seg, SizeLater: true})
			check(err)
			w, err = d.CreateFile(fs.Arg(i+1), k, int64(len(in)), true)
			check(err)
		} else {
			opts := &envelope.Options{ContentType: ct, SegmentSize: *seg, Size: int64(len(in)), SizeKnown: !*stream}
			w, err = envelope.CreateFile(fs.Arg(i+1), k, opts, true)
			check(err)
		}
		_, err = w.Write(in)
		check(err)
		check(w.Close())
	}
}

type readResult struct {
	OK      bool   `json:"ok"`
	Kind    string `json:"kind,omitempty"`
	Segment *int64 `json:"segment,omitempty"`
	Message string `json:"message,omitempty"`
	Emitted int    `json:"emitted"`
	SHA256  string `json:"sha256,omitempty"`
	Type    string `json:"content_type,omitempty"`
}

func classify(err error, res *readResult) {
	kinds := []struct {
		err  error
		name string
	}{
		{envelope.ErrWrongKey, "wrong_key"}, {envelope.ErrNotEnvelope, "not_envelope"},
		{envelope.ErrUnsupported, "unsupported"}, {envelope.ErrCorruptHeader, "corrupt_header"},
		{envelope.ErrTruncated, "truncated"}, {envelope.ErrTrailingData, "trailing_data"}, {envelope.ErrAuth, "auth"},
	}
	res.Kind = "other"
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			res.Kind = k.name
			break
		}
	}
	var se *envelope.SegmentError
	if errors.As(err, &se) {
		i := int64(se.Index)
		res.Segment = &i
	}
	res.Message = err.Error()
}

func finish(res *readResult, out []byte, err error) readResult {
	res.Emitted = len(out)
	if err != nil {
		classify(err, res)
		return *res
	}
	res.OK = true
	s := sha256.Sum256(out)
	res.SHA256 = hex.EncodeToString(s[:])
	return *res
}

// decrypt -key K FILE... prints one JSON line per file: the streaming Reader's result and the
// random-access File's. K is a local key or a recipient private key file.
func decrypt(args []string) {
	fs := flag.NewFlagSet("decrypt", flag.ExitOnError)
	keyPath := fs.String("key", "", "key file")
	fs.Parse(args)
	a, err := keyfile.LoadAny(*keyPath)
	check(err)
	var k envelope.KeyResolver = a.Identity
	if a.Local != nil {
		k = a.Local
	}
	enc := json.NewEncoder(os.Stdout)
	for _, p := range fs.Args() {
		data, err := os.ReadFile(p)
		check(err)
		var r readResult
		var out bytes.Buffer
		h, err := envelope.Decrypt(&out, bytes.NewReader(data), k)
		if h != nil {
			r.Type = h.ContentType.String()
		}
		reader := finish(&r, out.Bytes(), err)

		var f readResult
		var got []byte
		ef, err := envelope.Open(bytes.NewReader(data), int64(len(data)), k)
		if err == nil {
			f.Type = ef.Header().ContentType.String()
			got = make([]byte, ef.Size())
			var n int
			n, err = ef.ReadAt(got, 0)
			if err == io.EOF && int64(n) == ef.Size() {
				err = nil
			}
			got = got[:n]
		}
		file := finish(&f, got, err)
		check(enc.Encode(map[string]readResult{"reader": reader, "file": file}))
	}
}

func sampleEntry(i int) audit.Entry {
	md := sha256.Sum256([]byte(fmt.Sprint("enclave", i%3)))
	job := sha256.Sum256([]byte(fmt.Sprint("job", i)))
	e := audit.Entry{
		Type: audit.TypeRelease, Tenant: "hospital-a", Actor: "tok_runner1",
		Key: fmt.Sprintf("key-%d", i%2), KeyVersion: 1, JobDigest: job[:],
		Platform: "sgx", Measurement: md[:], TCBStatus: "UpToDate",
		Decision: audit.Allow, RequestID: fmt.Sprintf("req-%d", i),
	}
	switch i % 4 {
	case 3:
		e.Type, e.Decision, e.Rule, e.Field, e.Reason = audit.TypeDenial, audit.Deny, "tcb_status", "platforms.sgx.tcb_statuses", `TCB status "OutOfDate" is not accepted <by policy> & "quoted"`
	case 2:
		e.Insecure, e.Platform, e.Reason = true, "sim", "simulated TEE\u2028line separator, tab\t, ünïcödé, \x01 control"
	}
	return e
}

type fixture struct {
	db     *store.DB
	log    *auditlog.Log
	signer crypto.Signer
	root   []byte
	path   string
}

func openStore(path string, root []byte) *store.DB {
	backend, err := boltstore.Open(path, nil)
	check(err)
	db, err := store.Open(backend, root, nil)
	check(err)
	return db
}

func newFixture(dir, name string, signer crypto.Signer, every uint64, root []byte) *fixture {
	path := filepath.Join(dir, name)
	db := openStore(path, root)
	clock := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	n := 0
	lg := auditlog.New(auditlog.Config{Signer: signer, Blinder: db, CheckpointEvery: every, Now: func() time.Time {
		n++
		// Whole seconds, and now and then a fraction, so both time spellings occur.
		return clock.Add(time.Duration(n)*time.Second + time.Duration(n%3)*123456*time.Microsecond/1000)
	}})
	return &fixture{db: db, log: lg, signer: signer, root: root, path: path}
}

func (f *fixture) append(from, to int, reason string) {
	for i := from; i < to; i++ {
		e := sampleEntry(i)
		if reason != "" {
			e.Reason = reason
		}
		check(f.db.Update(func(tx store.Tx) error { _, err := f.log.Append(tx, e); return err }))
	}
}

func (f *fixture) export() []byte {
	var buf bytes.Buffer
	check(f.db.View(func(tx store.Tx) error { _, err := f.log.Export(tx, &buf); return err }))
	return buf.Bytes()
}

func (f *fixture) head() *audit.TreeHead {
	var h *audit.TreeHead
	check(f.db.View(func(tx store.Tx) error { var err error; h, err = f.log.SignTreeHead(tx); return err }))
	return h
}

func newSigner(alg string) crypto.Signer {
	switch alg {
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		check(err)
		return k
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		check(err)
		return k
	}
	fail("signer: want ecdsa or ed25519")
	return nil
}

func writeJSON(path string, v any) {
	b, err := json.Marshal(v)
	check(err)
	check(os.WriteFile(path, b, 0o644))
}

// audit-export -dir D -signer ecdsa|ed25519 -entries N -checkpoint-every K [-prefix P] [-fork-at F]
// writes D/export.jsonl, D/audit.pub (PEM), D/head.json; with -prefix, D/prefix.jsonl (the first
// P entries under a newly signed head, as a rolled-back server would export); with -fork-at,
// D/fork.jsonl (a log restored from a backup of F entries that then appended other entries).
func auditExport(args []string) {
	fs := flag.NewFlagSet("audit-export", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	alg := fs.String("signer", "ecdsa", "ecdsa or ed25519")
	n := fs.Int("entries", 10, "entries")
	every := fs.Uint64("checkpoint-every", 0, "checkpoint interval")
	prefix := fs.Int("prefix", 0, "also export a rolled-back prefix of this size")
	forkAt := fs.Int("fork-at", 0, "also export a fork after this many entries")
	fs.Parse(args)
	signer := newSigner(*alg)
	root := make([]byte, 32)
	rand.Read(root)
	f := newFixture(*dir, "log.db", signer, *every, root)
	defer f.db.Close()
	if *forkAt > 0 {
		f.append(0, *forkAt, "")
		check(f.db.BackupFile(filepath.Join(*dir, "backup.db")))
		f.append(*forkAt, *n, "")
	} else {
		f.append(0, *n, "")
	}
	check(os.WriteFile(filepath.Join(*dir, "export.jsonl"), f.export(), 0o644))
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	check(err)
	check(os.WriteFile(filepath.Join(*dir, "audit.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	writeJSON(filepath.Join(*dir, "head.json"), f.head())
	if *prefix > 0 {
		lines := bytes.SplitAfter(f.export(), []byte("\n"))
		var hdr audit.ExportHeader
		check(json.Unmarshal(lines[0], &hdr))
		var r []byte
		check(f.db.View(func(tx store.Tx) error { var err error; r, err = f.log.Root(tx, uint64(*prefix)); return err }))
		h, err := audit.SignTreeHead(signer, hdr.TreeHead.LogID, uint64(*prefix), r, time.Now())
		check(err)
		hdr.TreeHead, hdr.Checkpoints = h, nil
		b, _ := json.Marshal(hdr)
		out := append(b, '\n')
		for _, l := range lines[1 : 1+*prefix] {
			out = append(out, l...)
		}
		check(os.WriteFile(filepath.Join(*dir, "prefix.jsonl"), out, 0o644))
	}
	if *forkAt > 0 {
		g := &fixture{signer: signer}
		db2 := openStore(filepath.Join(*dir, "backup.db"), root)
		defer db2.Close()
		g.db, g.log = db2, auditlog.New(auditlog.Config{Signer: signer, Blinder: db2, CheckpointEvery: *every})
		g.append(*forkAt, *n, "a different history")
		check(os.WriteFile(filepath.Join(*dir, "fork.jsonl"), g.export(), 0o644))
	}
}

// audit-verify -pub PEM [-trusted HEAD.json]... FILE... prints one JSON line per file.
func auditVerify(args []string) {
	fs := flag.NewFlagSet("audit-verify", flag.ExitOnError)
	pubPath := fs.String("pub", "", "public key PEM")
	var trusted multi
	fs.Var(&trusted, "trusted", "trusted tree head JSON (repeatable)")
	fs.Parse(args)
	pemb, err := os.ReadFile(*pubPath)
	check(err)
	pub, err := audit.ParsePublicKey(pemb)
	check(err)
	var heads []*audit.TreeHead
	for _, p := range trusted {
		var h audit.TreeHead
		b, err := os.ReadFile(p)
		check(err)
		check(json.Unmarshal(b, &h))
		heads = append(heads, &h)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, p := range fs.Args() {
		data, err := os.ReadFile(p)
		check(err)
		res, err := audit.VerifyExport(bytes.NewReader(data), audit.VerifyOptions{PublicKey: pub, Trusted: heads})
		out := map[string]any{"ok": err == nil, "entries": res.Entries, "problems": res.Problems}
		if res.Problems == nil {
			out["problems"] = []audit.Problem{}
		}
		if err != nil {
			var te *audit.TamperError
			if !errors.As(err, &te) {
				fail(err.Error())
			}
			out["error"] = err.Error()
		}
		check(enc.Encode(out))
	}
}

// trail-verify -pub PEM [-trusted HEAD.json]... [-key NAME]... [-tenant NAME] FILE... runs
// audit.VerifyTrail on each trail export and prints one JSON line per file.
func trailVerify(args []string) {
	fs := flag.NewFlagSet("trail-verify", flag.ExitOnError)
	pubPath := fs.String("pub", "", "public key PEM")
	tenant := fs.String("tenant", "", "tenant whose trail must be there")
	var trusted, keys multi
	fs.Var(&trusted, "trusted", "trusted tree head JSON (repeatable)")
	fs.Var(&keys, "key", "key whose trail must be there (repeatable)")
	fs.Parse(args)
	pemb, err := os.ReadFile(*pubPath)
	check(err)
	pub, err := audit.ParsePublicKey(pemb)
	check(err)
	var heads []*audit.TreeHead
	for _, p := range trusted {
		var h audit.TreeHead
		b, err := os.ReadFile(p)
		check(err)
		check(json.Unmarshal(b, &h))
		heads = append(heads, &h)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, p := range fs.Args() {
		data, err := os.ReadFile(p)
		check(err)
		res, err := audit.VerifyTrail(bytes.NewReader(data), audit.TrailOptions{PublicKey: pub, Trusted: heads, Keys: keys, Tenant: *tenant})
		out := map[string]any{"ok": err == nil, "entries": res.Entries, "problems": res.Problems, "trails": res.Trails}
		if res.Problems == nil {
			out["problems"] = []audit.Problem{}
		}
		if err != nil {
			var te *audit.TamperError
			if !errors.As(err, &te) {
				fail(err.Error())
			}
			out["error"] = err.Error()
		}
		check(enc.Encode(out))
	}
}

type multi []string

func (m *multi) String() string     { return fmt.Sprint(*m) }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// audit-proofs -entries N prints JSON: the entries, a signed head per size, and every
// inclusion and consistency proof, for the Python verifier to check.
func auditProofs(args []string) {
	fs := flag.NewFlagSet("audit-proofs", flag.ExitOnError)
	n := fs.Int("entries", 9, "entries")
	dir := fs.String("dir", "", "scratch directory")
	fs.Parse(args)
	signer := newSigner("ed25519")
	root := make([]byte, 32)
	rand.Read(root)
	f := newFixture(*dir, "proofs.db", signer, 0, root)
	defer f.db.Close()
	f.append(0, *n, "")
	type incl struct {
		Index uint64       `json:"index"`
		Size  uint64       `json:"size"`
		Proof []attest.Hex `json:"proof"`
	}
	type cons struct {
		From  uint64       `json:"from"`
		To    uint64       `json:"to"`
		Proof []attest.Hex `json:"proof"`
	}
	out := struct {
		PublicKey   string            `json:"public_key"`
		Entries     []string          `json:"entries"`
		Heads       []*audit.TreeHead `json:"heads"`
		Inclusion   []incl            `json:"inclusion"`
		Consistency []cons            `json:"consistency"`
	}{}
	der, _ := x509.MarshalPKIXPublicKey(signer.Public())
	out.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	check(f.db.View(func(tx store.Tx) error {
		b := tx
		id, _ := f.log.LogID(b)
		for i := 0; i < *n; i++ {
			_, raw, err := f.log.Entry(b, uint64(i))
			check(err)
			out.Entries = append(out.Entries, string(raw))
		}
		for size := uint64(0); size <= uint64(*n); size++ {
			r, err := f.log.Root(b, size)
			check(err)
			h, err := audit.SignTreeHead(signer, id, size, r, time.Now())
			check(err)
			out.Heads = append(out.Heads, h)
			for i := uint64(0); i < size; i++ {
				p, err := f.log.InclusionProof(b, i, size)
				check(err)
				out.Inclusion = append(out.Inclusion, incl{i, size, hexes(p)})
			}
			for s1 := uint64(0); s1 <= size; s1++ {
				p, err := f.log.ConsistencyProof(b, s1, size)
				if err != nil {
					continue // the library refuses some trivial sizes
				}
				out.Consistency = append(out.Consistency, cons{s1, size, hexes(p)})
			}
		}
		return nil
	}))
	check(json.NewEncoder(os.Stdout).Encode(out))
}

func hexes(p [][]byte) []attest.Hex {
	out := make([]attest.Hex, len(p))
	for i, h := range p {
		out[i] = h
	}
	return out
}
