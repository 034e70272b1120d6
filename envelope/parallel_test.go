package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// memAt is an in-memory io.WriterAt for the positional paths.
type memAt struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	return copy(m.buf[off:], p), nil
}

// TestReadFromAtMatchesStream: positional encryption, in order to a stream
// and out of order into a file, writes exactly the bytes the streaming
// writer writes with the same randomness, for every worker count.
func TestReadFromAtMatchesStream(t *testing.T) {
	k := testKey(t, 1)
	for _, size := range []int{0, 1, 63, 64, 65, 9*64 + 5, 16 * 64} {
		pt := pseudoRandom(size, uint64(size))
		opts := func(workers int) *Options {
			return &Options{SegmentSize: 64, Size: int64(size), SizeKnown: true, Workers: workers, rand: &countingReader{}}
		}
		want := seal(t, k, pt, opts(1))
		for _, workers := range []int{1, 2, 3, 7} {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, k, opts(workers))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := w.ReadFromAt(bytes.NewReader(pt), int64(size)); err != nil || n != int64(size) {
				t.Fatalf("size %d, %d workers: %d, %v", size, workers, n, err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("size %d, %d workers: ordered positional output differs from the stream's", size, workers)
			}
			path := filepath.Join(t.TempDir(), "x.ppml")
			d, err := NewDraft(opts(workers))
			if err != nil {
				t.Fatal(err)
			}
			fw, err := d.CreateFile(path, k, NoSize, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fw.ReadFromAt(bytes.NewReader(pt), int64(size)); err != nil {
				t.Fatal(err)
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
				t.Fatalf("size %d, %d workers: file written out of order differs from the stream's", size, workers)
			}
			// The header in order, the body positionally after it.
			var hdr bytes.Buffer
			w, err = NewWriter(&hdr, k, opts(workers))
			if err != nil {
				t.Fatal(err)
			}
			body := &memAt{}
			if n, err := w.ReadFromAtTo(bytes.NewReader(pt), int64(size), body); err != nil || n != int64(size) {
				t.Fatalf("size %d, %d workers: ReadFromAtTo: %d, %v", size, workers, n, err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := append(hdr.Bytes(), body.buf...); !bytes.Equal(got, want) {
				t.Fatalf("size %d, %d workers: header and positional body differ from the stream's", size, workers)
			}
		}
	}
}

func TestReadFromAtErrors(t *testing.T) {
	k := testKey(t, 1)
	pt := pseudoRandom(10*64, 1)
	newW := func(opts *Options) *Writer {
		w, err := NewWriter(io.Discard, k, opts)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// A length the header declares must be the size given.
	w := newW(&Options{SegmentSize: 64, Size: 100, SizeKnown: true})
	if _, err := w.ReadFromAt(bytes.NewReader(pt), int64(len(pt))); err == nil || !strings.Contains(err.Error(), "differs from the 100 bytes") {
		t.Fatalf("size mismatch: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failed ReadFromAt succeeded")
	}
	// Not after Write.
	w = newW(&Options{SegmentSize: 64})
	w.Write([]byte("x"))
	if _, err := w.ReadFromAt(bytes.NewReader(pt), int64(len(pt))); err == nil {
		t.Fatal("ReadFromAt after Write")
	}
	// An input shorter than the size given (a file truncated meanwhile):
	// an error, and no file.
	path := filepath.Join(t.TempDir(), "x.ppml")
	for _, workers := range []int{1, 3} {
		fw, err := CreateFile(path, k, &Options{SegmentSize: 64, Size: int64(len(pt)), SizeKnown: true, Workers: workers}, false)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fw.ReadFromAt(bytes.NewReader(pt[:5*64+3]), int64(len(pt)))
		if err == nil || !strings.Contains(err.Error(), "changed meanwhile") {
			t.Fatalf("short input: %v", err)
		}
		if err := fw.Close(); err == nil {
			t.Fatal("Close committed after a failed ReadFromAt")
		}
		fw.Abort()
		if _, err := os.Stat(path); err == nil {
			t.Fatal("output left behind")
		}
	}
}

// TestPositionalDecrypt: WriteAllAt (any order), Verify and WriteTo (in
// order) on every worker count decrypt intact files, and with two modified
// segments all report the first in file order; WriteTo writes exactly the
// segments before it.
func TestPositionalDecrypt(t *testing.T) {
	k := testKey(t, 1)
	pt := pseudoRandom(20*64+9, 4)
	ct := seal(t, k, pt, &Options{SegmentSize: 64})
	bad := bytes.Clone(ct)
	h := headerLen(t, ct)
	bad[h+5*(64+TagSize)+3] ^= 1
	bad[h+12*(64+TagSize)+3] ^= 1
	for _, workers := range []int{1, 2, 3, 8} {
		open := func(data []byte) *File {
			f, err := Open(bytes.NewReader(data), int64(len(data)), k)
			if err != nil {
				t.Fatal(err)
			}
			f.SetWorkers(workers)
			return f
		}
		f := open(ct)
		if err := f.Verify(); err != nil {
			t.Fatalf("%d workers: Verify: %v", workers, err)
		}
		var m memAt
		if n, err := f.WriteAllAt(&m); err != nil || n != int64(len(pt)) || !bytes.Equal(m.buf, pt) {
			t.Fatalf("%d workers: WriteAllAt: %d, %v", workers, n, err)
		}
		var out bytes.Buffer
		if n, err := f.WriteTo(&out); err != nil || n != int64(len(pt)) || !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("%d workers: WriteTo: %d, %v", workers, n, err)
		}

		firstBad := func(what string, err error) {
			t.Helper()
			var se *SegmentError
			if !errors.As(err, &se) || se.Index != 5 || !errors.Is(err, ErrAuth) {
				t.Fatalf("%d workers: %s: %v, want segment 5 failing", workers, what, err)
			}
		}
		f = open(bad)
		firstBad("Verify", f.Verify())
		_, err := f.WriteAllAt(&memAt{})
		firstBad("WriteAllAt", err)
		out.Reset()
		_, err = f.WriteTo(&out)
		firstBad("WriteTo", err)
		if !bytes.Equal(out.Bytes(), pt[:5*64]) {
			t.Fatalf("%d workers: WriteTo wrote %d bytes before the bad segment, want %d", workers, out.Len(), 5*64)
		}
	}
}

// TestWriteToStopsOnWriteError: a failing destination stops every worker
// and its error is returned.
func TestWriteToStopsOnWriteError(t *testing.T) {
	k := testKey(t, 1)
	pt := pseudoRandom(50*64, 5)
	ct := seal(t, k, pt, &Options{SegmentSize: 64})
	f, err := Open(bytes.NewReader(ct), int64(len(ct)), k)
	if err != nil {
		t.Fatal(err)
	}
	f.SetWorkers(3)
	var sink bytes.Buffer
	if _, err := f.WriteTo(&limitedWriter{&sink, 7 * 64}); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("%v", err)
	}
}

// TestRunWritten: every segment is produced once and written once; in
// order when ordered; after failures (of produce or of write) the error is
// the lowest failing segment's, and ordered output holds exactly the
// segments before it.
func TestRunWritten(t *testing.T) {
	const n = 40
	for _, ordered := range []bool{false, true} {
		for _, workers := range []int{1, 2, 3, 8} {
			for _, c := range []struct {
				name               string
				badProduce, badOut []uint64
				want               uint64 // n: no failure
			}{
				{"clean", nil, nil, n},
				{"produce fails", []uint64{7, 23}, nil, 7},
				{"write fails", nil, []uint64{11}, 11},
				{"both", []uint64{30}, []uint64{12}, 12},
				{"first and last", []uint64{0, n - 1}, nil, 0},
			} {
				in := func(set []uint64, i uint64) bool {
					for _, v := range set {
						if v == i {
							return true
						}
					}
					return false
				}
				var mu sync.Mutex
				produced := make([]int, n)
				var written []uint64
				err := runWritten(n, workers, 8, ordered, func(w int, buf []byte, i uint64) ([]byte, error) {
					mu.Lock()
					produced[i]++
					mu.Unlock()
					if in(c.badProduce, i) {
						return nil, &SegmentError{i, ErrAuth, "bad"}
					}
					buf[0] = byte(i)
					return buf[:1], nil
				}, func(i uint64, out []byte) error {
					if out[0] != byte(i) {
						t.Errorf("segment %d written with segment %d's bytes", i, out[0])
					}
					if in(c.badOut, i) {
						return &SegmentError{i, ErrTrailingData, "write"}
					}
					written = append(written, i) // one writer at a time
					return nil
				})
				what := fmt.Sprintf("%s, ordered %v, %d workers", c.name, ordered, workers)
				var se *SegmentError
				switch {
				case c.want == n && err != nil:
					t.Fatalf("%s: %v", what, err)
				case c.want < n && (!errors.As(err, &se) || se.Index != c.want):
					t.Fatalf("%s: error %v, want segment %d's", what, err, c.want)
				}
				for i, p := range produced {
					if p > 1 || c.want == n && p != 1 || uint64(i) <= c.want && p != 1 {
						t.Fatalf("%s: segment %d produced %d times", what, i, p)
					}
				}
				seen := map[uint64]bool{}
				for k, i := range written {
					if seen[i] {
						t.Fatalf("%s: segment %d written twice", what, i)
					}
					seen[i] = true
					if ordered && i != uint64(k) {
						t.Fatalf("%s: wrote %v, not in order", what, written)
					}
				}
				if ordered && len(written) != int(min(c.want, n)) {
					t.Fatalf("%s: wrote %d segments, want the %d before the failure", what, len(written), c.want)
				}
				if c.want == n && len(written) != n {
					t.Fatalf("%s: wrote %d of %d segments", what, len(written), n)
				}
			}
		}
	}
}
