package envelope

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden vector in testdata/")

// countingReader yields 0x00, 0x01, 0x02, ... so the golden vector's
// "randomness" is easy to state in the spec.
type countingReader struct{ next byte }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

// Golden vector inputs (also stated in docs/formats/envelope.md).
var (
	goldenSecret = func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(0xa0 + i)
		}
		return b
	}()
	goldenPlaintext = []byte("name,age\nMichael,\nAndy,30\nJustin,19\n" +
		"The ppml envelope golden vector: 64-byte segments, so this plaintext spans three of them, the last one short.\n")
)

func goldenOptions() *Options {
	return &Options{ContentType: TypeCSV, SegmentSize: 64, Size: int64(len(goldenPlaintext)), SizeKnown: true, rand: &countingReader{}}
}

func TestGoldenVector(t *testing.T) {
	k, err := NewLocalKey(goldenSecret)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Encrypt(&buf, bytes.NewReader(goldenPlaintext), k, goldenOptions()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden.ppml")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "golden.txt"), goldenPlaintext, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("re-encrypt with the same randomness gives the same bytes", func(t *testing.T) {
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("format drift: encryption no longer reproduces %s (run with -update only for an intended format change)", path)
		}
	})
	t.Run("decrypt", func(t *testing.T) {
		pt, err := os.ReadFile(filepath.Join("testdata", "golden.txt"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := openAll(want, k)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Reader: %v", err)
		}
		got, err = openRandom(want, k)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("File: %v", err)
		}
		h, _ := ReadHeader(bytes.NewReader(want))
		if h.KeyRef.String() != "local:"+k.ID() || h.ContentType != TypeCSV || h.SegmentSize != 64 || h.PlaintextLength != uint64(len(pt)) {
			t.Fatalf("header fields: %+v", h)
		}
	})
}

// TestGoldenVectorLengthAfterWrap is the second vector of the spec: the
// same key, plaintext and randomness as golden.ppml, written in two phases
// (NewDraft with SizeLater, the length given to the writer), so the header
// has FlagLengthAfterWrap and the data key is wrapped with the length field
// reading "unknown".
func TestGoldenVectorLengthAfterWrap(t *testing.T) {
	k, err := NewLocalKey(goldenSecret)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDraft(&Options{ContentType: TypeCSV, SegmentSize: 64, SizeLater: true, rand: &countingReader{}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := d.NewWriter(&buf, k, int64(len(goldenPlaintext)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(goldenPlaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden-length-after-wrap.ppml")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("format drift: two-phase encryption no longer reproduces %s (run with -update only for an intended format change)", path)
	}
	got, err := openAll(want, k)
	if err != nil || !bytes.Equal(got, goldenPlaintext) {
		t.Fatalf("Reader: %v", err)
	}
	if got, err = openRandom(want, k); err != nil || !bytes.Equal(got, goldenPlaintext) {
		t.Fatalf("File: %v", err)
	}
	h, err := ReadHeader(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if h.Flags != FlagLengthAfterWrap || h.PlaintextLength != uint64(len(goldenPlaintext)) || h.Len() != 165 {
		t.Fatalf("header fields: %+v", h)
	}
	// The wrap's associated data is the fixed part with the length field
	// reading "unknown": what the draft handed out before the length existed.
	aad := h.WrapAAD()
	if !bytes.Equal(aad, d.WrapAAD()) || !bytes.Equal(aad[16:24], bytes.Repeat([]byte{0xff}, 8)) ||
		!bytes.Equal(aad[:16], h.Raw[:16]) || !bytes.Equal(aad[24:], h.Raw[24:63]) {
		t.Fatalf("wrap AAD %x", aad)
	}
	// Against golden.ppml (same randomness, so the same wrap key, nonce and
	// data key): only the flags, the wrap's GCM tag (its associated data
	// differs) and the body (the header digest differs) change.
	v1, err := os.ReadFile(filepath.Join("testdata", "golden.ppml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(v1) != len(want) || !bytes.Equal(v1[:10], want[:10]) || !bytes.Equal(v1[12:149], want[12:149]) ||
		want[10] != 0 || want[11] != 1 || bytes.Equal(v1[149:165], want[149:165]) || bytes.Equal(v1[165:245], want[165:245]) {
		t.Fatal("the two vectors differ in more than the flags, the wrap tag and the body")
	}
}

// Golden recipient keys (also stated in docs/formats/envelope.md): the
// X25519 private key is 32 bytes counting up from 0xc0, the
// ML-KEM-768 + X25519 seed 32 bytes counting up from 0xe0.
func goldenIdentity(t testing.TB, kem string) *Identity {
	t.Helper()
	start := map[string]byte{KEMX25519: 0xc0, KEMMLKEM768X25519: 0xe0}[kem]
	sk := make([]byte, 32)
	for i := range sk {
		sk[i] = start + byte(i)
	}
	id, err := NewIdentity(kem, sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGoldenVectorRecipient: the third and fourth vectors of the spec, the
// golden plaintext encrypted to a recipient of each KEM with the same
// counting "randomness" for salt, nonce prefix and data key. HPKE draws its
// ephemeral key itself, so the wrapped data key (and hence the body) cannot
// be re-created; everything else is checked byte for byte, and the stored
// file must decrypt.
func TestGoldenVectorRecipient(t *testing.T) {
	for _, kem := range recipientKEMs {
		t.Run(kem, func(t *testing.T) {
			id := goldenIdentity(t, kem)
			base := filepath.Join("testdata", "golden-recipient-"+kem)
			var buf bytes.Buffer
			if _, err := Encrypt(&buf, bytes.NewReader(goldenPlaintext), id.Recipient(), goldenOptions()); err != nil {
				t.Fatal(err)
			}
			if *update {
				sk, _ := id.Bytes()
				keyFile := fmt.Sprintf("# ppml recipient private key (%s). Keep it secret: it decrypts every file encrypted to its public key.\n"+
					"# created: 2026-01-01T00:00:00Z\n# key id: %s\n# public key: %s\nppml-recipient-key-v1:%s:%x\n",
					KEMDisplay(kem), id.ID(), id.Recipient(), kem, sk)
				for name, data := range map[string][]byte{".ppml": buf.Bytes(), ".key": []byte(keyFile), ".pub": []byte(id.Recipient().String() + "\n")} {
					if err := os.WriteFile(base+name, data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			want, err := os.ReadFile(base + ".ppml")
			if err != nil {
				t.Fatal(err)
			}
			pub, err := os.ReadFile(base + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := ParseRecipient(string(pub)); err != nil || r.ID() != id.ID() || r.String() != id.Recipient().String() {
				t.Fatalf("%s.pub does not hold the golden public key: %v", base, err)
			}
			h, err := ReadHeader(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			again, _ := ReadHeader(bytes.NewReader(buf.Bytes()))
			wrapAt := h.Len() - len(h.WrappedKey)
			if h.Len() != again.Len() || !bytes.Equal(h.Raw[:wrapAt], again.Raw[:wrapAt]) {
				t.Fatalf("format drift: the header of %s.ppml before the wrapped key is no longer what encryption writes", base)
			}
			if h.KeyRef.String() != "recipient:"+kem+":"+id.ID() {
				t.Fatalf("key reference %s", h.KeyRef)
			}
			dk, err := id.UnwrapDataKey(h.KeyRef, h.WrappedKey, h.WrapAAD())
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range dk {
				if b != byte(0x27+i) {
					t.Fatalf("data key %x, want 27 28 … 46", dk)
				}
			}
			if got, err := openAll(want, id); err != nil || !bytes.Equal(got, goldenPlaintext) {
				t.Fatalf("Reader: %v", err)
			}
			if got, err := openRandom(want, id); err != nil || !bytes.Equal(got, goldenPlaintext) {
				t.Fatalf("File: %v", err)
			}
		})
	}
}
