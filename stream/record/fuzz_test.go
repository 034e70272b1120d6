package record

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Parse and Open: an error or a record,
// never a panic, and nothing opens unless it was sealed by the writer.
func FuzzOpen(f *testing.F) {
	key := testKey(f, 1)
	// A fixed writer id: the seeds are sealed again in every fuzz worker
	// process, and the property must hold across them.
	id := WriterID{1, 2, 3}
	w, err := NewWriter("s", key, &WriterOptions{ID: id})
	if err != nil {
		f.Fatal(err)
	}
	for _, body := range []string{"", "a", "line one\nline two\n"} {
		msg, _ := w.Seal(1, 42, []byte(body))
		f.Add(msg)
	}
	end, _ := w.SealEnd(1)
	f.Add(end)
	o := NewOpener(key)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if h.Len > len(b) {
			t.Fatalf("header length %d beyond %d bytes", h.Len, len(b))
		}
		r, err := o.Open(h.Stream, h.Partition, b)
		if err == nil && (r.Writer != id || r.Stream != "s") {
			t.Fatalf("opened a record no writer sealed: %+v", r.Header)
		}
	})
}

// FuzzFileReader reads arbitrary record files.
func FuzzFileReader(f *testing.F) {
	var buf bytes.Buffer
	fw := NewFileWriter(&buf)
	fw.Write([]byte("abc"))
	fw.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte(FileMagic + "\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := NewFileReader(bytes.NewReader(b))
		for i := 0; i < 1000; i++ {
			if _, err := fr.Next(); err != nil {
				return
			}
		}
	})
}
