package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func testKey(t testing.TB, seed byte) *LocalKey {
	t.Helper()
	s := bytes.Repeat([]byte{seed}, LocalKeySize)
	k, err := NewLocalKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pseudoRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func seal(t testing.TB, k KeyWrapper, pt []byte, opts *Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Grow(len(pt) + len(pt)/MinSegmentSize + 4096)
	if _, err := Encrypt(&buf, bytes.NewReader(pt), k, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openAll decrypts with the streaming Reader and returns what it emitted,
// even on error.
func openAll(ct []byte, kr KeyResolver) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(ct))
	_, err := Decrypt(&out, bytes.NewReader(ct), kr)
	return out.Bytes(), err
}

// openRandom decrypts through File.ReadAt.
func openRandom(ct []byte, kr KeyResolver) ([]byte, error) {
	f, err := Open(bytes.NewReader(ct), int64(len(ct)), kr)
	if err != nil {
		return nil, err
	}
	out := make([]byte, f.Size())
	n, err := f.ReadAt(out, 0)
	if err == io.EOF && int64(n) == f.Size() {
		err = nil
	}
	return out[:n], err
}

func TestRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	const seg = DefaultSegmentSize
	sizes := []struct {
		name string
		n    int
	}{
		{"0", 0}, {"1", 1}, {"segment-1", seg - 1}, {"segment", seg}, {"segment+1", seg + 1},
		{"3 segments+7", 3*seg + 7}, {"100 MiB", 100 << 20},
	}
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			pt := pseudoRandom(sz.n, uint64(sz.n))
			for _, known := range []bool{false, true} {
				opts := &Options{ContentType: TypeCSV, Size: int64(sz.n), SizeKnown: known}
				ct := seal(t, k, pt, opts)
				if want := int(BodyLen(uint64(sz.n), seg)); len(ct)-headerLen(t, ct) != want {
					t.Fatalf("body is %d bytes, want %d", len(ct)-headerLen(t, ct), want)
				}
				got, err := openAll(ct, k)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Reader (known=%v): err=%v, equal=%v", known, err, bytes.Equal(got, pt))
				}
				got, err = openRandom(ct, k)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("File.ReadAt (known=%v): err=%v, equal=%v", known, err, bytes.Equal(got, pt))
				}
				if sz.n > 5*seg {
					continue
				}
				// Byte-at-a-time writes and a plain Read loop give the same.
				var buf bytes.Buffer
				w, err := NewWriter(&buf, k, opts)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < len(pt); {
					c := min(len(pt)-i, 1+i%4099)
					if _, err := w.Write(pt[i : i+c]); err != nil {
						t.Fatal(err)
					}
					i += c
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				r, err := NewReader(&buf, k)
				if err != nil {
					t.Fatal(err)
				}
				got, err = io.ReadAll(struct{ io.Reader }{r})
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("chunked: err=%v equal=%v", err, bytes.Equal(got, pt))
				}
			}
		})
	}
}

func headerLen(t testing.TB, ct []byte) int {
	t.Helper()
	h, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	return h.Len()
}

func TestReadFromMatchesWrite(t *testing.T) {
	k := testKey(t, 1)
	for _, n := range []int{0, 1, 63, 64, 65, 64*3 + 7, 10000} {
		pt := pseudoRandom(n, 7)
		var buf bytes.Buffer
		w, err := NewWriter(&buf, k, &Options{SegmentSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		// iotest-style reader returning one byte at a time exercises the peek.
		if _, err := w.ReadFrom(&oneByteReader{bytes.NewReader(pt)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := openAll(buf.Bytes(), k)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: err=%v equal=%v", n, err, bytes.Equal(got, pt))
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestReadAtRandomOffsets(t *testing.T) {
	k := testKey(t, 2)
	const seg = 4096
	pt := pseudoRandom(37*seg+123, 3)
	ct := seal(t, k, pt, &Options{SegmentSize: seg, Size: int64(len(pt)), SizeKnown: true})
	f, err := Open(bytes.NewReader(ct), int64(len(ct)), k)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != int64(len(pt)) {
		t.Fatalf("Size = %d, want %d", f.Size(), len(pt))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		off := r.IntN(len(pt) + 10)
		n := r.IntN(3 * seg)
		buf := make([]byte, n)
		got, err := f.ReadAt(buf, int64(off))
		wantN := max(0, min(n, len(pt)-off))
		if got != wantN {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, want %d (err %v)", n, off, got, wantN, err)
		}
		if got < n && err != io.EOF {
			t.Fatalf("short ReadAt without io.EOF: %v", err)
		}
		if got == n && err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:got], pt[off:off+got]) {
			t.Fatalf("ReadAt(%d bytes at %d): wrong plaintext", n, off)
		}
	}
	// Seek from the end, the way Parquet readers find the footer.
	if _, err := f.Seek(-8, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(tail, pt[len(pt)-8:]) {
		t.Fatalf("tail: %v %x", err, tail)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(all, pt) {
		t.Fatalf("full read after seek: %v", err)
	}
}

// checkPrefix fails unless got is a prefix of want that ends on a segment
// boundary: only authenticated segments may be emitted.
func checkPrefix(t *testing.T, got, want []byte, seg int) {
	t.Helper()
	if !bytes.HasPrefix(want, got) {
		t.Fatalf("emitted %d bytes that are not plaintext", len(got))
	}
	if len(got)%seg != 0 {
		t.Fatalf("emitted %d bytes: not whole segments", len(got))
	}
}

func TestBadInput(t *testing.T) {
	k := testKey(t, 3)
	const seg = 64
	pt := pseudoRandom(3*seg+7, 4)
	optsKnown := &Options{SegmentSize: seg, Size: int64(len(pt)), SizeKnown: true}
	optsStream := &Options{SegmentSize: seg}
	good := seal(t, k, pt, optsKnown)
	goodStream := seal(t, k, pt, optsStream)
	hl := headerLen(t, good)
	segAt := func(b []byte, i int) []byte {
		start := hl + i*(seg+TagSize)
		return b[start:min(len(b), start+seg+TagSize)]
	}
	// expectFail decrypts both ways and checks the error and that nothing
	// but authenticated plaintext came out.
	expectFail := func(t *testing.T, ct []byte, kr KeyResolver, want ...error) {
		t.Helper()
		got, err := openAll(ct, kr)
		if err == nil {
			t.Fatal("Reader: no error")
		}
		checkPrefix(t, got, pt, seg)
		matches := func(err error) bool {
			for _, w := range want {
				if errors.Is(err, w) {
					return true
				}
			}
			return len(want) == 0
		}
		if !matches(err) {
			t.Fatalf("Reader: error %q does not match %v", err, want)
		}
		got, err = openRandom(ct, kr)
		if err == nil {
			t.Fatal("File: no error")
		}
		checkPrefix(t, got, pt, seg)
		if !matches(err) {
			t.Fatalf("File: error %q does not match %v", err, want)
		}
	}

	t.Run("wrong key", func(t *testing.T) {
		other := testKey(t, 4)
		_, err := openAll(good, other)
		var wk *WrongKeyError
		if !errors.As(err, &wk) || !errors.Is(err, ErrWrongKey) {
			t.Fatalf("error %v is not a WrongKeyError", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, k.ID()) || !strings.Contains(msg, other.ID()) || !strings.Contains(msg, "wrong key") {
			t.Fatalf("message %q must name both key ids", msg)
		}
		expectFail(t, good, other, ErrWrongKey)
		kms, _ := ParseKeyRef("kms://keys.example.com:8443/owner-a@3")
		_, err = other.UnwrapDataKey(kms, []byte{1}, nil)
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "kms://keys.example.com:8443/owner-a@3") {
			t.Fatalf("kms reference with a local key: %v", err)
		}
		_, err = Keyring{other, testKey(t, 5)}.UnwrapDataKey(k.Ref(), nil, nil)
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("keyring: %v", err)
		}
		if _, err := openAll(good, Keyring{other, k}); err != nil {
			t.Fatalf("keyring holding the right key: %v", err)
		}
	})

	t.Run("truncation at any byte", func(t *testing.T) {
		for _, c := range []struct {
			name string
			ct   []byte
			want []error
		}{
			{"length in header", good, []error{ErrTruncated}},
			{"streamed", goodStream, []error{ErrTruncated, ErrAuth}},
		} {
			for n := 0; n < len(c.ct); n++ {
				want := c.want
				if n == 0 {
					want = []error{ErrNotEnvelope}
				}
				t.Run(fmt.Sprintf("%s/%d", c.name, n), func(t *testing.T) { expectFail(t, c.ct[:n], k, want...) })
			}
		}
	})

	t.Run("any flipped bit", func(t *testing.T) {
		for _, ct := range [][]byte{good, goodStream} {
			for i := 0; i < len(ct)*8; i++ {
				bad := bytes.Clone(ct)
				bad[i/8] ^= 1 << (i % 8)
				got, err := openAll(bad, k)
				if err == nil {
					t.Fatalf("bit %d: no error", i)
				}
				checkPrefix(t, got, pt, seg)
				got, err = openRandom(bad, k)
				if err == nil {
					t.Fatalf("bit %d: File: no error", i)
				}
				checkPrefix(t, got, pt, seg)
			}
		}
	})

	t.Run("two segments swapped", func(t *testing.T) {
		for _, p := range [][2]int{{0, 1}, {1, 2}, {0, 2}} {
			bad := bytes.Clone(good)
			a, b := segAt(bad, p[0]), segAt(bad, p[1])
			tmp := bytes.Clone(a)
			copy(a, b)
			copy(b, tmp)
			expectFail(t, bad, k, ErrAuth)
		}
		// Swapping the short final segment with a full one changes the
		// layout; it must still fail.
		body := good[hl:]
		swapped := append(append(append([]byte{}, good[:hl]...), body[3*(seg+TagSize):]...), body[:3*(seg+TagSize)]...)
		expectFail(t, swapped, k)
	})

	t.Run("segment from another file under the same key spliced in", func(t *testing.T) {
		other := seal(t, k, pt, optsKnown) // same key, same plaintext, same length
		for i := 0; i < 4; i++ {
			bad := bytes.Clone(good)
			copy(segAt(bad, i), segAt(other, i))
			expectFail(t, bad, k, ErrAuth)
			got, _ := openAll(bad, k)
			if len(got) != i*seg {
				t.Fatalf("segment %d spliced: %d bytes emitted, want %d", i, len(got), i*seg)
			}
		}
	})

	t.Run("header of file A on the body of file B", func(t *testing.T) {
		b := seal(t, k, pt, optsKnown)
		bad := append(bytes.Clone(good[:hl]), b[headerLen(t, b):]...)
		expectFail(t, bad, k, ErrAuth)
		_, err := openAll(bad, k)
		var se *SegmentError
		if !errors.As(err, &se) || se.Index != 0 {
			t.Fatalf("want a segment 0 error, got %v", err)
		}
	})

	t.Run("appended bytes after the last segment", func(t *testing.T) {
		for _, extra := range [][]byte{{0}, make([]byte, TagSize), make([]byte, seg+TagSize), segAt(good, 3), segAt(good, 0)} {
			expectFail(t, append(bytes.Clone(good), extra...), k, ErrTrailingData)
			expectFail(t, append(bytes.Clone(goodStream), extra...), k, ErrTrailingData, ErrTruncated, ErrAuth)
		}
		// A full final segment followed by more bytes is recognised even
		// without a declared length.
		full := seal(t, k, pt[:2*seg], optsStream)
		expectFail(t, append(bytes.Clone(full), make([]byte, seg+TagSize)...), k, ErrTrailingData)
	})

	t.Run("empty and zero-length files", func(t *testing.T) {
		expectFail(t, nil, k, ErrNotEnvelope)
		_, err := openAll(nil, k)
		if !strings.Contains(err.Error(), "empty") {
			t.Fatalf("message %q should say the file is empty", err)
		}
		for _, known := range []bool{false, true} {
			ct := seal(t, k, nil, &Options{SizeKnown: known})
			got, err := openAll(ct, k)
			if err != nil || len(got) != 0 {
				t.Fatalf("empty plaintext: %v %d", err, len(got))
			}
			if got, err := openRandom(ct, k); err != nil || len(got) != 0 {
				t.Fatalf("empty plaintext via File: %v", err)
			}
			// Header alone (no final segment) is truncation.
			expectFail(t, ct[:headerLen(t, ct)], k, ErrTruncated, ErrAuth)
		}
	})

	t.Run("a file that is not an envelope", func(t *testing.T) {
		for _, b := range [][]byte{[]byte("name,age\nAndy,30\n"), pseudoRandom(500, 9), []byte("PPMLENX" + strings.Repeat("\x00", 100))} {
			expectFail(t, b, k, ErrNotEnvelope)
		}
		v2 := bytes.Clone(good)
		v2[7] = 2
		expectFail(t, v2, k, ErrUnsupported)
	})
}

func TestDeclaredSizeEnforced(t *testing.T) {
	k := testKey(t, 1)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, k, &Options{Size: 10, SizeKnown: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 11)); err == nil {
		t.Fatal("writing past the declared size succeeded")
	}
	w, _ = NewWriter(&buf, k, &Options{Size: 10, SizeKnown: true})
	w.Write(make([]byte, 9))
	if err := w.Close(); err == nil {
		t.Fatal("closing short of the declared size succeeded")
	}
}

type limitedWriter struct {
	w   io.Writer
	max int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.max {
		n, _ := l.w.Write(p[:l.max])
		l.max = 0
		return n, errors.New("no space left on device")
	}
	l.max -= len(p)
	return l.w.Write(p)
}

func TestDiskFullWriter(t *testing.T) {
	k := testKey(t, 1)
	pt := pseudoRandom(5000, 1)
	for _, limit := range []int{0, 10, 200, 1000, 4999} {
		var buf bytes.Buffer
		_, err := Encrypt(&limitedWriter{&buf, limit}, bytes.NewReader(pt), k, &Options{SegmentSize: 256})
		if err == nil || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("limit %d: err = %v", limit, err)
		}
	}
}

func TestKeyRef(t *testing.T) {
	good := []string{
		"local:0123456789abcdef0123456789abcdef",
		"kms://keys.example.com/owner-a",
		"kms://keys.example.com:8443/owner-a@3",
		"kms://10.0.0.1:1/k",
		"kms://[2001:db8::1]:8443/k.v_1-2@4294967295",
		"kms://kms.example.org/owner/results@2",
	}
	for _, s := range good {
		r, err := ParseKeyRef(s)
		if err != nil || r.String() != s {
			t.Errorf("%q: %v, %q", s, err, r.String())
		}
	}
	bad := []string{
		"", "local:", "local:0123456789ABCDEF0123456789abcdef", "local:0123", "file:x",
		"kms://", "kms://host", "kms://host/", "kms://Host/k", "kms://host:0/k", "kms://host:65536/k",
		"kms://host:/k", "kms://host/k@0", "kms://host/k@01", "kms://host/k@", "kms://host/a//b", "kms://host/a/", "kms://host/../k", "kms://host/a/./b",
		"kms://[2001:DB8::1]/k", "kms://[2001:db8:0::1]/k", "kms://[10.0.0.1]/k", "kms://-h/k", "kms://host:080/k",
		"kms://host/" + strings.Repeat("k", 257), "kms://host/k@1@2", "kms://host/k b",
	}
	for _, s := range bad {
		if _, err := ParseKeyRef(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestFileWriteTo(t *testing.T) {
	k := testKey(t, 1)
	pt := pseudoRandom(10*4096+99, 11)
	for _, known := range []bool{true, false} {
		ct := seal(t, k, pt, &Options{SegmentSize: 4096, Size: int64(len(pt)), SizeKnown: known})
		for _, off := range []int64{0, 1, 4095, 4096, 4097, int64(len(pt)) - 1, int64(len(pt))} {
			f, err := Open(bytes.NewReader(ct), int64(len(ct)), k)
			if err != nil {
				t.Fatal(err)
			}
			f.Seek(off, io.SeekStart)
			var out bytes.Buffer
			n, err := f.WriteTo(&out)
			if err != nil || n != int64(len(pt))-off || !bytes.Equal(out.Bytes(), pt[off:]) {
				t.Fatalf("known=%v off=%d: n=%d err=%v", known, off, n, err)
			}
		}
		// A modified middle segment stops the copy after the segments before it.
		bad := bytes.Clone(ct)
		bad[headerLen(t, ct)+5*(4096+TagSize)+7] ^= 1
		f, err := Open(bytes.NewReader(bad), int64(len(bad)), k)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := f.WriteTo(&out); !errors.Is(err, ErrAuth) || out.Len() != 5*4096 {
			t.Fatalf("tampered: %v, %d bytes", err, out.Len())
		}
	}
}

// TestInlineWriterMatchesPipelined: the inline writer (including its
// direct-seal path for large writes) and the pipelined one produce envelopes
// that decrypt to the same plaintext, for every way of splitting the writes.
func TestInlineWriterMatchesPipelined(t *testing.T) {
	k := testKey(t, 1)
	pt := pseudoRandom(9*64+5, 3)
	for _, workers := range []int{1, 2, 3} {
		for _, chunk := range []int{1, 63, 64, 65, 128, 129, 500, len(pt)} {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, k, &Options{SegmentSize: 64, Workers: workers, Size: int64(len(pt)), SizeKnown: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(pt); i += chunk {
				if _, err := w.Write(pt[i:min(len(pt), i+chunk)]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if want := headerLen(t, buf.Bytes()) + int(BodyLen(uint64(len(pt)), 64)); buf.Len() != want {
				t.Fatalf("workers=%d chunk=%d: %d bytes, want %d", workers, chunk, buf.Len(), want)
			}
			got, err := openAll(buf.Bytes(), k)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("workers=%d chunk=%d: %v", workers, chunk, err)
			}
		}
	}
}
