package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sealLater writes pt in two phases: a SizeLater draft, the length given to
// the writer.
func sealLater(t testing.TB, kw KeyWrapper, pt []byte, opts *Options) []byte {
	t.Helper()
	o := Options{SizeLater: true}
	if opts != nil {
		o = *opts
		o.SizeLater = true
	}
	d, err := NewDraft(&o)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := d.NewWriter(&buf, kw, int64(len(pt)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDraftRecordsLengthAfterWrap: a two-phase file records its length
// although the data key was wrapped before the length existed, and reads
// back with every reader and with Inspect.
func TestDraftRecordsLengthAfterWrap(t *testing.T) {
	k := testKey(t, 5)
	const seg = 64
	for _, n := range []int{0, 1, seg - 1, seg, seg + 1, 3*seg + 7} {
		pt := pseudoRandom(n, uint64(n))
		ct := sealLater(t, k, pt, &Options{SegmentSize: seg, ContentType: TypeJSON})
		h, err := ReadHeader(bytes.NewReader(ct))
		if err != nil {
			t.Fatal(err)
		}
		if !h.LengthAfterWrap() || h.PlaintextLength != uint64(n) || h.ContentType != TypeJSON {
			t.Fatalf("%d bytes: header %+v", n, h)
		}
		if got, err := openAll(ct, k); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: Reader: %v", n, err)
		}
		if got, err := openRandom(ct, k); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: File: %v", n, err)
		}
		in, err := Inspect(bytes.NewReader(ct), -1)
		if err != nil || in.PlaintextBytes == nil || *in.PlaintextBytes != uint64(n) || in.Layout != "ok" || !in.LengthAfterWrap {
			t.Fatalf("%d bytes: inspect %+v %v", n, in, err)
		}
	}
}

// recordingWrapper wraps with a local key and keeps what it saw and gave.
type recordingWrapper struct {
	k    *LocalKey
	aad  []byte
	dk   []byte
	size int // data key size to return (0: DataKeySize)
	err  error
}

func (r *recordingWrapper) NewDataKey(aad []byte) ([]byte, []byte, KeyRef, error) {
	if r.err != nil {
		return nil, nil, KeyRef{}, r.err
	}
	r.aad = bytes.Clone(aad)
	dk, wrapped, ref, err := r.k.NewDataKey(aad)
	if r.size != 0 {
		dk = append(dk, make([]byte, r.size)...)[:r.size]
		for i := range dk {
			dk[i] = 0xaa
		}
	}
	r.dk = dk
	return dk, wrapped, ref, err
}

func TestDraftUse(t *testing.T) {
	k := testKey(t, 6)
	pt := []byte("two-phase")

	t.Run("the wrapper gets WrapAAD, which is the caller's copy", func(t *testing.T) {
		d, err := NewDraft(&Options{SizeLater: true})
		if err != nil {
			t.Fatal(err)
		}
		aad := d.WrapAAD()
		if len(aad) != 63 || binary.BigEndian.Uint64(aad[16:]) != UnknownLength || binary.BigEndian.Uint16(aad[10:]) != FlagLengthAfterWrap {
			t.Fatalf("draft AAD %x", aad)
		}
		aad[30] ^= 1 // must not change the draft
		rw := &recordingWrapper{k: k}
		var buf bytes.Buffer
		w, err := d.NewWriter(&buf, rw, int64(len(pt)))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rw.aad, d.WrapAAD()) || !bytes.Equal(w.Header().WrapAAD(), rw.aad) {
			t.Fatal("the wrapper was not asked with the draft's AAD")
		}
		if !bytes.Equal(rw.dk, make([]byte, DataKeySize)) {
			t.Fatal("the writer did not clear the data key")
		}
		if got, err := openAll(buf.Bytes(), k); err != nil || !bytes.Equal(got, pt) {
			t.Fatal(err)
		}
	})

	t.Run("a draft makes one file", func(t *testing.T) {
		d, _ := NewDraft(&Options{SizeLater: true})
		if _, err := d.NewWriter(&bytes.Buffer{}, k, 3); err != nil {
			t.Fatal(err)
		}
		_, err := d.NewWriter(&bytes.Buffer{}, k, 3)
		if err == nil || !strings.Contains(err.Error(), "already used for a file") {
			t.Fatalf("second writer from one draft: %v", err)
		}
		dir := t.TempDir()
		if _, err := d.CreateFile(filepath.Join(dir, "x.ppml"), k, 3, false); err == nil {
			t.Fatal("CreateFile reused a draft")
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("a refused CreateFile left %v", ents)
		}
		// Also after a failure that reached the key wrapper: it may have
		// handed out its one key.
		d, _ = NewDraft(&Options{SizeLater: true})
		if _, err := d.NewWriter(&bytes.Buffer{}, &recordingWrapper{err: errors.New("key service unreachable")}, 3); err == nil || !strings.Contains(err.Error(), "key service unreachable") {
			t.Fatalf("wrapper error: %v", err)
		}
		if _, err := d.NewWriter(&bytes.Buffer{}, k, 3); err == nil || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("draft reused after a failed wrap: %v", err)
		}
	})

	t.Run("wrong-size data keys and wrapped keys are refused", func(t *testing.T) {
		for _, size := range []int{16, 31, 33, 64} {
			d, _ := NewDraft(&Options{SizeLater: true})
			rw := &recordingWrapper{k: k, size: size}
			var buf bytes.Buffer
			_, err := d.NewWriter(&buf, rw, 3)
			if err == nil || !strings.Contains(err.Error(), "byte data key, want 32") {
				t.Fatalf("%d-byte data key: %v", size, err)
			}
			if !bytes.Equal(rw.dk, make([]byte, size)) {
				t.Fatalf("%d-byte data key was not cleared", size)
			}
			if buf.Len() != 0 {
				t.Fatal("a header was written")
			}
		}
		for _, wrapped := range [][]byte{nil, make([]byte, MaxWrappedKeyLen+1)} {
			d, _ := NewDraft(nil)
			fw := fixedKey{dk: make([]byte, DataKeySize), wrapped: wrapped, ref: k.Ref()}
			if _, err := d.NewWriter(&bytes.Buffer{}, fw, NoSize); err == nil || !strings.Contains(err.Error(), "wrapped data key is") {
				t.Fatalf("%d-byte wrapped key: %v", len(wrapped), err)
			}
		}
		d, _ := NewDraft(nil)
		if _, err := d.NewWriter(&bytes.Buffer{}, nil, NoSize); err == nil || !strings.Contains(err.Error(), "no key") {
			t.Fatalf("nil wrapper: %v", err)
		}
	})

	t.Run("sizes", func(t *testing.T) {
		bad := []struct {
			opts *Options
			size int64
			want string
		}{
			{&Options{SizeLater: true}, NoSize, "no size was given"},
			{&Options{SizeLater: true}, -5, "no size was given"},
			{&Options{SizeLater: true, SegmentSize: 16}, 1 << 40, "more than 2^32 segments"},
			{nil, 9, "records no length"},
			{&Options{Size: 9, SizeKnown: true}, 8, "differs from the 9 bytes declared"},
		}
		for _, c := range bad {
			d, err := NewDraft(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.NewWriter(&bytes.Buffer{}, k, c.size)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%+v size %d: got %v, want %q", c.opts, c.size, err, c.want)
			}
			// A refused size does not use the draft up.
			if c.opts != nil && c.opts.SizeKnown {
				if _, err := d.NewWriter(&bytes.Buffer{}, k, 9); err != nil {
					t.Fatalf("the draft was used up by a refused size: %v", err)
				}
			}
		}
		if _, err := NewDraft(&Options{SizeLater: true, SizeKnown: true}); err == nil || !strings.Contains(err.Error(), "SizeKnown and SizeLater") {
			t.Fatalf("SizeKnown with SizeLater: %v", err)
		}
		if _, err := NewWriter(&bytes.Buffer{}, k, &Options{SizeLater: true}); err == nil || !strings.Contains(err.Error(), "two-phase") {
			t.Fatalf("one-phase NewWriter with SizeLater: %v", err)
		}
		if _, err := CreateFile(filepath.Join(t.TempDir(), "x"), k, &Options{SizeLater: true}, false); err == nil || !strings.Contains(err.Error(), "two-phase") {
			t.Fatalf("one-phase CreateFile with SizeLater: %v", err)
		}
		// The given size is enforced like a declared one.
		for _, n := range []int{8, 10} {
			d, _ := NewDraft(&Options{SizeLater: true})
			w, err := d.NewWriter(&bytes.Buffer{}, k, 9)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(make([]byte, n))
			if cerr := w.Close(); werr == nil && cerr == nil {
				t.Fatalf("%d bytes written to a writer given 9: no error", n)
			}
		}
	})

	t.Run("CreateFile commits atomically", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.ppml")
		d, _ := NewDraft(&Options{SizeLater: true, ContentType: TypeCSV})
		fw, err := d.CreateFile(path, k, int64(len(pt)), false)
		if err != nil {
			t.Fatal(err)
		}
		defer fw.Abort()
		if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() == "out.ppml" {
			t.Fatalf("before Close: %v", ents)
		}
		fw.Write(pt)
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		f, err := OpenFile(path, k)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Header().PlaintextLength != uint64(len(pt)) || !f.Header().LengthAfterWrap() {
			t.Fatalf("header %+v", f.Header())
		}
	})
}

type fixedKey struct {
	dk, wrapped []byte
	ref         KeyRef
}

func (f fixedKey) NewDataKey([]byte) ([]byte, []byte, KeyRef, error) {
	return bytes.Clone(f.dk), f.wrapped, f.ref, nil
}

// TestLengthAfterWrapTampering: the length is outside the wrap's associated
// data but inside the payload key, so changing it (or the flag) fails.
func TestLengthAfterWrapTampering(t *testing.T) {
	k := testKey(t, 7)
	const seg = 64
	pt := pseudoRandom(3*seg+7, 8)
	good := sealLater(t, k, pt, &Options{SegmentSize: seg})
	setL := func(l uint64) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[16:], l)
		return b
	}
	setFlags := func(f uint16) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint16(b[10:], f)
		return b
	}
	cases := []struct {
		name string
		ct   []byte
		// want, or ErrAuth: with the length changed the payload key
		// differs, so no segment authenticates.
		want error
	}{
		{"length one byte shorter", setL(uint64(len(pt) - 1)), ErrTrailingData},
		{"length one byte longer", setL(uint64(len(pt) + 1)), ErrTruncated},
		// The body cut to fit a shorter length: the payload key differs.
		{"length and body shortened together", setL(2 * seg)[:headerLen(t, good)+2*(seg+TagSize)], ErrAuth},
		{"length-after-wrap flag without a length", setL(UnknownLength), ErrCorruptHeader},
		{"flag cleared", setFlags(0), ErrCorruptHeader},
		{"unknown flag", setFlags(FlagLengthAfterWrap | 0x0002), ErrUnsupported},
	}
	for _, c := range cases {
		got, err := openAll(c.ct, k)
		if !errors.Is(err, c.want) && !errors.Is(err, ErrAuth) {
			t.Fatalf("%s: Reader: %v, want %v", c.name, err, c.want)
		}
		if len(got) != 0 {
			t.Fatalf("%s: released %d bytes", c.name, len(got))
		}
		if _, err := openRandom(c.ct, k); !errors.Is(err, c.want) && !errors.Is(err, ErrAuth) {
			t.Fatalf("%s: File: %v, want %v", c.name, err, c.want)
		}
	}
	// And setting the flag on a one-phase file breaks its wrap.
	v1 := seal(t, k, pt, &Options{SegmentSize: seg, Size: int64(len(pt)), SizeKnown: true})
	binary.BigEndian.PutUint16(v1[10:], FlagLengthAfterWrap)
	if _, err := openAll(v1, k); !errors.Is(err, ErrCorruptHeader) {
		t.Fatalf("flag set on a one-phase file: %v", err)
	}
}
