package record

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ppml/ppml/envelope"
)

func testKey(t testing.TB, b byte) *envelope.LocalKey {
	k, err := envelope.NewLocalKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	key := testKey(t, 1)
	w, err := NewWriter("payments", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := NewOpener(key)
	for i, body := range []string{"a,1\nb,2\n", "", "c,3"} {
		msg, err := w.Seal(3, int64(1000+i), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		r, err := o.Open("payments", 3, msg)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Body) != body || r.Time != int64(1000+i) || r.Seq != uint64(i+1) || r.Kind != KindData || r.Writer != w.ID() {
			t.Fatalf("record %d: got %+v", i, r)
		}
	}
	end, err := w.SealEnd(3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := o.Open("payments", 3, end)
	if err != nil || r.Kind != KindEnd || r.Seq != 4 || len(r.Body) != 0 {
		t.Fatalf("end record: %+v %v", r, err)
	}
	if w.Next(3) != 5 || w.Next(0) != 1 {
		t.Fatalf("next: %d %d", w.Next(3), w.Next(0))
	}
}

func TestWrongPlaceAndKey(t *testing.T) {
	key := testKey(t, 1)
	w, _ := NewWriter("payments", key, nil)
	msg, _ := w.Seal(0, 1, []byte("x"))
	o := NewOpener(key)
	for _, c := range []struct {
		stream string
		part   uint32
	}{{"refunds", 0}, {"payments", 1}} {
		if _, err := o.Open(c.stream, c.part, msg); !errors.Is(err, ErrWrongStream) {
			t.Errorf("%s/%d: %v, want ErrWrongStream", c.stream, c.part, err)
		}
	}
	if _, err := NewOpener(testKey(t, 2)).Open("payments", 0, msg); !errors.Is(err, ErrWrongKey) {
		t.Errorf("other key: %v, want ErrWrongKey", err)
	}
	// A header rewritten to name the place it was moved to fails
	// authentication: the stream is bound into the data key's wrapping and
	// the partition into the nonce.
	moved := bytes.Replace(append([]byte(nil), msg...), []byte("payments"), []byte("paymentz"), 1)
	if _, err := o.Open("paymentz", 0, moved); !errors.Is(err, ErrAuth) {
		t.Errorf("renamed stream: %v, want ErrAuth", err)
	}
	moved = append([]byte(nil), msg...)
	moved[11] = 1
	if _, err := o.Open("payments", 1, moved); !errors.Is(err, ErrAuth) {
		t.Errorf("renumbered partition: %v, want ErrAuth", err)
	}
}

// TestEveryByteMatters flips each byte of a record: every change is an
// error, never a different plaintext.
func TestEveryByteMatters(t *testing.T) {
	key := testKey(t, 1)
	w, _ := NewWriter("s", key, nil)
	msg, _ := w.Seal(2, 7, []byte("hello"))
	o := NewOpener(key)
	for i := range msg {
		b := append([]byte(nil), msg...)
		b[i] ^= 0x40
		if r, err := o.Open("s", 2, b); err == nil {
			t.Fatalf("byte %d flipped: opened as %+v", i, r)
		}
	}
	if _, err := o.Open("s", 2, msg[:len(msg)-1]); err == nil {
		t.Fatal("truncated record opened")
	}
}

func TestResumedWriter(t *testing.T) {
	key := testKey(t, 1)
	w, _ := NewWriter("s", key, nil)
	a, _ := w.Seal(0, 1, []byte("same"))
	w2, err := NewWriter("s", key, &WriterOptions{ID: w.ID(), Next: map[uint32]uint64{0: 1}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := w2.Seal(0, 1, []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("a resumed writer reused the data key")
	}
	o := NewOpener(key)
	ra, _ := o.Open("s", 0, a)
	rb, err := o.Open("s", 0, b)
	if err != nil || ra.Seq != rb.Seq || ra.Writer != rb.Writer {
		t.Fatalf("resumed writer: %v %+v", err, rb)
	}
}

func TestParseErrors(t *testing.T) {
	key := testKey(t, 1)
	w, _ := NewWriter("s", key, nil)
	msg, _ := w.Seal(0, 1, []byte("x"))
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":   {nil, ErrNotRecord},
		"magic":   {[]byte("PPMLENV..."), ErrNotRecord},
		"version": {append([]byte("PPSR\x02"), msg[5:]...), ErrUnsupported},
		"short":   {msg[:20], ErrCorrupt},
		"kind":    {append(append([]byte(nil), msg[:5]...), append([]byte{9}, msg[6:]...)...), ErrUnsupported},
		"seq0":    {append(append([]byte(nil), msg[:12]...), append(make([]byte, 8), msg[20:]...)...), ErrCorrupt},
	}
	for name, c := range cases {
		if _, err := Parse(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestFile(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFileWriter(&buf)
	for _, r := range []string{"one", "", "three"} {
		if err := fw.Write([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	fr := NewFileReader(bytes.NewReader(buf.Bytes()))
	var got []string
	for {
		r, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(r))
	}
	if len(got) != 3 || got[2] != "three" {
		t.Fatalf("got %q", got)
	}
	for cut := 1; cut < buf.Len(); cut++ {
		fr := NewFileReader(bytes.NewReader(buf.Bytes()[:cut]))
		n := 0
		var err error
		for err == nil {
			_, err = fr.Next()
			n++
		}
		if err == io.EOF && cut != len(FileMagic) && cut != len(FileMagic)+7 && cut != len(FileMagic)+11 {
			t.Fatalf("cut at %d: read to EOF without noticing", cut)
		}
	}
}
