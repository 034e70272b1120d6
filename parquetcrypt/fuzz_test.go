package parquetcrypt

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecrypt feeds arbitrary file bytes to the reader entry points with
// the suite's fixed keys: Open, DecryptTo and the Arrow record path. Errors
// are expected; panics and hangs are bugs.
func FuzzDecrypt(f *testing.F) {
	dir := suiteDir(f)
	for _, pat := range []string{"*.encrypted", "aes256/*.encrypted"} {
		found, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range found {
			if b, err := os.ReadFile(p); err == nil && len(b) < 16<<10 {
				f.Add(b, false)
			}
		}
	}
	f.Add(writeSmall(f, EncryptConfig{Algorithm: AESGCMCTR, FooterKey: []byte("0123456789012345"), FooterKeyMetadata: []byte("kf")}), false)
	f.Add(writeSmall(f, EncryptConfig{FooterKey: []byte("0123456789012345"), FooterKeyMetadata: []byte("kf")}), true)
	keys := suiteKeys(false)
	for id, k := range suiteKeys(true) {
		keys[id+"-256"] = k
	}
	f.Fuzz(func(t *testing.T, b []byte, withPrefix bool) {
		var opts []Option
		if withPrefix {
			opts = append(opts, WithAADPrefix([]byte("tester")))
		}
		file, err := Open(context.Background(), bytes.NewReader(b), &StaticKeys{ByID: keys}, opts...)
		if err != nil {
			return
		}
		if _, err := file.DecryptTo(context.Background(), io.Discard); err != nil {
			return
		}
		rr, err := file.NewRecordReader(context.Background(), RecordOptions{BatchSize: 64})
		if err != nil {
			return
		}
		defer rr.Release()
		for rr.Next() {
		}
	})
}

// writeSmall writes a few rows of the round-trip table.
func writeSmall(t testing.TB, cfg EncryptConfig) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, rtSchema, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := rtRecord(0, 30)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzKeyMaterial feeds arbitrary JSON to the parquet key tools parsers and
// to a retriever that unwraps through a KMS holding the suite's master keys.
func FuzzKeyMaterial(f *testing.F) {
	sidecar, err := os.ReadFile(filepath.Join(suiteDir(f), "_KEY_MATERIAL_FOR_external_key_material_java.parquet.encrypted.json"))
	if err != nil {
		f.Fatal(err)
	}
	store, err := ParseKeyMaterialStore(sidecar)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sidecar, []byte(`{"keyMaterialType":"PKMT1","internalStorage":false,"keyReference":"footerKey"}`))
	for _, v := range store {
		f.Add([]byte(`{}`), []byte(v))
	}
	kms := &LocalKMS{MasterKeys: suiteKeys(false)}
	md, err := NewKeyMetadata(kms, "kc1", []byte("abcdefghijklmnop"), false)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"a":"b"}`), md)
	f.Fuzz(func(t *testing.T, storeJSON, metadata []byte) {
		_, _ = ParseKeyMaterial(metadata)
		s, _ := ParseKeyMaterialStore(storeJSON)
		r := &KeyToolsRetriever{KMS: kms, Store: s}
		for _, col := range []string{"", "c"} {
			k, err := r.Key(context.Background(), KeyRequest{Column: col, KeyMetadata: metadata})
			if err == nil && len(k) != 16 && len(k) != 24 && len(k) != 32 {
				t.Fatalf("unwrapped a %d-byte key", len(k))
			}
		}
	})
}

// FuzzThrift checks the compact codec: whatever decodes re-encodes to bytes
// that decode to the same tree.
func FuzzThrift(f *testing.F) {
	for _, sf := range suiteFiles[:3] {
		b, err := os.ReadFile(sf.path(f))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[len(b)-400:])
	}
	f.Add([]byte{0x15, 0x00, 0x19, 0x1c, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _, err := decodeStruct(b)
		if err != nil {
			return
		}
		enc := s.encode(nil)
		s2, n, err := decodeStruct(enc)
		if err != nil {
			t.Fatalf("re-encoded struct does not decode: %v", err)
		}
		if n != len(enc) {
			t.Fatalf("re-encoded struct used %d of %d bytes", n, len(enc))
		}
		if enc2 := s2.encode(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable")
		}
	})
}
