package idx

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// file builds an IDX file of unsigned bytes with the given dims and element values i % 251.
func file(dims ...int) []byte {
	b := []byte{0, 0, TypeUint8, byte(len(dims))}
	n := 1
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
		n *= d
	}
	for i := range n {
		b = append(b, byte(i%251))
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestOpenAndRead(t *testing.T) {
	b := file(5, 3, 4)
	a, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Items() != 5 || a.ItemSize() != 12 {
		t.Fatalf("%d items of %d bytes", a.Items(), a.ItemSize())
	}
	item := make([]byte, 12)
	if err := a.Read(2, item); err != nil || item[0] != 24 || item[11] != 35 {
		t.Fatalf("item 2: %v %v", item, err)
	}
	if err := a.Read(5, item); err == nil {
		t.Fatal("item 5 of 5 read")
	}
	labels := file(7)
	if a, err := Open(bytes.NewReader(labels), int64(len(labels))); err != nil || a.ItemSize() != 1 || a.Items() != 7 {
		t.Fatalf("labels: %v", err)
	}
}

func TestBadFiles(t *testing.T) {
	good := file(4, 2, 2)
	float := append([]byte{}, good...)
	float[2] = TypeFloat32
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than the 4-byte magic"},
		{"wrong magic", append([]byte{1, 2}, good[2:]...), "does not start with two zero bytes"},
		{"unknown type", []byte{0, 0, 0x42, 1, 0, 0, 0, 0}, "unknown element type 0x42"},
		{"float elements", float, "0x0d (float32) is not supported"},
		{"no dims", []byte{0, 0, 8, 0}, "0 dimensions"},
		{"cut header", good[:9], "truncated in its header"},
		{"truncated data", good[:len(good)-3], "announces 4 × 2 × 2 = 16 bytes of data, the file holds 13"},
		{"trailing bytes", append(append([]byte{}, good...), 9, 9), "2 bytes after the 4 × 2 × 2 elements"},
		{"zero inner dim", file(3, 0), "dimension 1 is 0"},
		{"gzip", gz(good), "gzip-compressed IDX file: inflate it first"},
		{"huge dims", []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "too large"},
	}
	for _, c := range cases {
		_, err := Open(bytes.NewReader(c.b), int64(len(c.b)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestGunzip(t *testing.T) {
	good := file(6, 5, 5)
	out, err := Gunzip(bytes.NewReader(gz(good)), 1<<20)
	if err != nil || !bytes.Equal(out, good) {
		t.Fatalf("round trip: %v", err)
	}
	z := gz(good)
	cases := []struct {
		name string
		b    []byte
		max  int64
		want string
	}{
		{"not gzip", good, 1 << 20, "gzip"},
		{"cut stream", z[:len(z)/2], 1 << 20, "truncated"},
		{"cut trailer", z[:len(z)-4], 1 << 20, "unexpected EOF"},
		{"trailing", gz(append(append([]byte{}, good...), 1)), 1 << 20, "bytes after"},
		{"over the limit", z, 100, "more than the 100 allowed"},
		{"inside not IDX", gz([]byte("hello world")), 1 << 20, "not an IDX file"},
		// A bomb: the header announces 4 GiB of zeros; nothing is allocated for it.
		{"bomb", gz([]byte{0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0}), 1 << 30, "more than the"},
	}
	for _, c := range cases {
		_, err := Gunzip(bytes.NewReader(c.b), c.max)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	// A corrupted checksum.
	bad := append([]byte{}, z...)
	bad[len(bad)-8] ^= 0xff
	if _, err := Gunzip(bytes.NewReader(bad), 1<<20); err == nil {
		t.Error("bad CRC accepted")
	}
}

// The Fashion-MNIST test labels from Debian's dataset-fashion-mnist.
func TestFashionMNISTLabels(t *testing.T) {
	f, err := os.Open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
	if err != nil {
		t.Fatalf("dataset-fashion-mnist is required (make deps installs it): %v", err)
	}
	defer f.Close()
	b, err := Gunzip(f, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil || a.Items() != 10000 {
		t.Fatalf("%v", err)
	}
	counts := make([]int, 10)
	one := make([]byte, 1)
	for i := range a.Items() {
		a.Read(i, one)
		counts[one[0]]++
	}
	for c, n := range counts {
		if n != 1000 {
			t.Fatalf("class %d has %d test images, want 1000", c, n)
		}
	}
}
