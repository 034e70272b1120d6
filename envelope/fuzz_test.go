package envelope

import (
	"bytes"
	"io"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	k := testKey(f, 1)
	f.Add(seal(f, k, []byte("hello"), nil))
	f.Add(seal(f, k, nil, &Options{SizeKnown: true}))
	f.Add(sealLater(f, k, []byte("hello"), nil))
	f.Add(seal(f, testIdentity(f, KEMX25519, 1).Recipient(), []byte("hello"), nil)) // small: see FuzzRecipientUnwrap
	f.Add([]byte(Magic + "\x01\x01\x02\x00\x00\x00\x00\x00\x40"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if !bytes.Equal(h.Raw, data[:h.Len()]) {
			t.Fatal("Raw differs from the bytes read")
		}
		// A parsed header re-encodes to the same bytes.
		again := &Header{Version: h.Version, Suite: h.Suite, ContentType: h.ContentType, Flags: h.Flags,
			SegmentSize: h.SegmentSize, PlaintextLength: h.PlaintextLength, Salt: h.Salt, NoncePrefix: h.NoncePrefix,
			KeyRef: h.KeyRef, WrappedKey: h.WrappedKey}
		if err := again.finish(again.fixed()); err != nil || !bytes.Equal(again.Raw, h.Raw) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		// The wrap's associated data is the fixed part, with the length
		// field reading "unknown" exactly when the flag says so.
		aad := h.WrapAAD()
		if len(aad) != fixedLen || !bytes.Equal(aad[:16], data[:16]) || !bytes.Equal(aad[24:], data[24:fixedLen]) {
			t.Fatalf("wrap AAD %x does not match the fixed part", aad)
		}
		if h.LengthAfterWrap() != !bytes.Equal(aad[16:24], data[16:24]) || h.LengthAfterWrap() && !h.LengthKnown() {
			t.Fatalf("flags %#04x, length %d, wrap AAD %x", h.Flags, h.PlaintextLength, aad)
		}
	})
}

func FuzzParseKeyRef(f *testing.F) {
	for _, s := range []string{"local:0123456789abcdef0123456789abcdef", "kms://h:1/k@2", "kms://[::1]/k", "kms://a.b/c",
		"recipient:x25519:0123456789abcdef0123456789abcdef", "recipient:mlkem768x25519:0123456789abcdef0123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseKeyRef(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("%q parsed but prints as %q", s, r.String())
		}
		if _, err := ParseKeyRef(r.String()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzSegmentReader feeds arbitrary files to both readers under a fixed key.
// Without the key nothing can be forged, so any success must reproduce one
// of the seed plaintexts exactly.
func FuzzSegmentReader(f *testing.F) {
	k := testKey(f, 1)
	plain := [][]byte{nil, []byte("x"), pseudoRandom(64*3+7, 1), pseudoRandom(128, 2)}
	for i, p := range plain {
		f.Add(seal(f, k, p, &Options{SegmentSize: 64, Size: int64(len(p)), SizeKnown: i%2 == 0}))
		f.Add(seal(f, k, p, &Options{SegmentSize: 64}))
		f.Add(sealLater(f, k, p, &Options{SegmentSize: 64}))
	}
	known := func(got []byte) bool {
		for _, p := range plain {
			if bytes.Equal(got, p) {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := openAll(data, k)
		if err == nil && !known(got) {
			t.Fatalf("Reader accepted a forged file: %d bytes", len(got))
		}
		if err != nil && len(got)%64 != 0 {
			t.Fatalf("Reader emitted a partial segment before failing: %v", err)
		}
		// The inline path and the Read path agree with the parallel one.
		if r, rerr := NewReader(bytes.NewReader(data), k); rerr == nil {
			r.SetWorkers(1)
			var seq bytes.Buffer
			_, serr := r.WriteTo(&seq)
			if (serr == nil) != (err == nil) || !bytes.Equal(seq.Bytes(), got) {
				t.Fatalf("inline WriteTo differs: %v vs %v", serr, err)
			}
			r2, _ := NewReader(bytes.NewReader(data), k)
			viaRead, rerr := io.ReadAll(struct{ io.Reader }{r2})
			if (rerr == nil) != (err == nil) || !bytes.Equal(viaRead, got) {
				t.Fatalf("Read differs: %v vs %v", rerr, err)
			}
		}
		fl, err := Open(bytes.NewReader(data), int64(len(data)), k)
		if err != nil {
			return
		}
		all, err := io.ReadAll(fl)
		if err == nil && !known(all) {
			t.Fatal("File accepted a forged file")
		}
		// The parallel paths agree with Read: WriteTo writes exactly the
		// segments before the first failure, WriteAllAt all of them when
		// none fails.
		for _, workers := range []int{1, 3} {
			fl.SetWorkers(workers)
			fl.Seek(0, io.SeekStart)
			var seq bytes.Buffer
			if _, werr := fl.WriteTo(&seq); (werr == nil) != (err == nil) || !bytes.Equal(seq.Bytes(), all) {
				t.Fatalf("%d workers: File.WriteTo differs from Read: %v vs %v", workers, werr, err)
			}
			var m memAt
			if _, aerr := fl.WriteAllAt(&m); (aerr == nil) != (err == nil) || err == nil && !bytes.Equal(m.buf, all) {
				t.Fatalf("%d workers: File.WriteAllAt differs from Read: %v vs %v", workers, aerr, err)
			}
		}
		b := make([]byte, 10)
		fl.ReadAt(b, fl.Size()/2)
	})
}
