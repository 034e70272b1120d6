package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"testing"
)

const benchSize = 64 << 20

func BenchmarkRawAESGCM(b *testing.B) {
	pt := pseudoRandom(benchSize, 1)
	blk, _ := aes.NewCipher(make([]byte, 32))
	g, _ := cipher.NewGCM(blk)
	out := make([]byte, DefaultSegmentSize+TagSize)
	nonce := make([]byte, 12)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		for off := 0; off < len(pt); off += DefaultSegmentSize {
			nonce[0]++
			g.Seal(out[:0], nonce, pt[off:off+DefaultSegmentSize], nil)
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	k := testKey(b, 1)
	pt := pseudoRandom(benchSize, 1)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encrypt(io.Discard, bytes.NewReader(pt), k, &Options{Size: benchSize, SizeKnown: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncryptOneCore(b *testing.B) {
	k := testKey(b, 1)
	pt := pseudoRandom(benchSize, 1)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewWriter(io.Discard, k, &Options{Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := testKey(b, 1)
	ct := seal(b, k, pseudoRandom(benchSize, 1), nil)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decrypt(io.Discard, bytes.NewReader(ct), k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadAt4KiB(b *testing.B) {
	k := testKey(b, 1)
	ct := seal(b, k, pseudoRandom(benchSize, 1), nil)
	f, err := Open(bytes.NewReader(ct), int64(len(ct)), k)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		// Sequential 4 KiB reads: one segment decryption per 256 reads.
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + 4096) % (benchSize - 4096)
	}
}

func BenchmarkDecryptOneCore(b *testing.B) {
	k := testKey(b, 1)
	ct := seal(b, k, pseudoRandom(benchSize, 1), nil)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(ct), k)
		if err != nil {
			b.Fatal(err)
		}
		r.SetWorkers(1)
		if _, err := r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoPerSegmentAllocations: allocations per file do not grow with the
// number of segments, in any mode.
func TestNoPerSegmentAllocations(t *testing.T) {
	k := testKey(t, 1)
	const seg = 4096
	small, large := pseudoRandom(16*seg, 1), pseudoRandom(256*seg, 1)
	ctSmall, ctLarge := seal(t, k, small, &Options{SegmentSize: seg}), seal(t, k, large, &Options{SegmentSize: seg})
	for _, workers := range []int{1, 2} {
		enc := func(pt []byte) float64 {
			return testing.AllocsPerRun(5, func() {
				Encrypt(io.Discard, bytes.NewReader(pt), k, &Options{SegmentSize: seg, Workers: workers})
			})
		}
		dec := func(ct []byte) float64 {
			return testing.AllocsPerRun(5, func() {
				r, _ := NewReader(bytes.NewReader(ct), k)
				r.SetWorkers(workers)
				r.WriteTo(io.Discard)
			})
		}
		if a, b := enc(small), enc(large); b > a+8 {
			t.Errorf("encrypt, %d workers: %v allocations for 16 segments, %v for 256", workers, a, b)
		}
		if a, b := dec(ctSmall), dec(ctLarge); b > a+8 {
			t.Errorf("decrypt, %d workers: %v allocations for 16 segments, %v for 256", workers, a, b)
		}
	}
}
