package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var recipientKEMs = []string{KEMMLKEM768X25519, KEMX25519}

// testIdentity is a fixed key pair per KEM and seed.
func testIdentity(t testing.TB, kem string, seed byte) *Identity {
	t.Helper()
	sk := bytes.Repeat([]byte{seed}, 32)
	id, err := NewIdentity(kem, sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRecipientRoundTrip: a file encrypted to the public key decrypts with
// the private key, through every reader and with two-phase writing, and the
// public key alone cannot decrypt (it is no KeyResolver).
func TestRecipientRoundTrip(t *testing.T) {
	for _, kem := range recipientKEMs {
		id := testIdentity(t, kem, 1)
		r := id.Recipient()
		if _, ok := any(r).(KeyResolver); ok {
			t.Fatal("a public key can decrypt")
		}
		for _, n := range []int{0, 1, 5000} {
			pt := pseudoRandom(n, uint64(n))
			for _, ct := range [][]byte{
				seal(t, r, pt, &Options{SegmentSize: 1024}),
				seal(t, r, pt, &Options{SegmentSize: 1024, Size: int64(n), SizeKnown: true}),
				sealLater(t, r, pt, &Options{SegmentSize: 1024}),
			} {
				h, err := ReadHeader(bytes.NewReader(ct))
				if err != nil {
					t.Fatal(err)
				}
				if h.KeyRef != r.Ref() || h.KeyRef.String() != "recipient:"+kem+":"+r.ID() {
					t.Fatalf("%s: header names %s", kem, h.KeyRef)
				}
				if got, err := openAll(ct, id); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s, %d bytes: Reader: %v", kem, n, err)
				}
				if got, err := openRandom(ct, id); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s, %d bytes: File: %v", kem, n, err)
				}
			}
		}
		// A private key also encrypts (to its own public half).
		ct := seal(t, id, []byte("x"), nil)
		if got, err := openAll(ct, id); err != nil || string(got) != "x" {
			t.Fatal(err)
		}
		// The private key survives its serialization.
		sk, _ := id.Bytes()
		again, err := NewIdentity(kem, sk)
		if err != nil || again.ID() != id.ID() || again.Recipient().String() != r.String() {
			t.Fatalf("%s: reloaded private key differs: %v", kem, err)
		}
	}
}

// TestRecipientWrongKey: another recipient's private key, a private key of
// the other KEM and a local key all report the key the file needs, and so
// does a recipient key offered for a local-key file.
func TestRecipientWrongKey(t *testing.T) {
	a := testIdentity(t, KEMMLKEM768X25519, 1)
	ct := seal(t, a.Recipient(), []byte("secret"), nil)
	for _, kr := range []KeyResolver{testIdentity(t, KEMMLKEM768X25519, 2), testIdentity(t, KEMX25519, 1), testKey(t, 1), Keyring{testKey(t, 1), testIdentity(t, KEMX25519, 3)}} {
		_, err := openAll(ct, kr)
		var wk *WrongKeyError
		if !errors.Is(err, ErrWrongKey) || !errors.As(err, &wk) || !strings.Contains(err.Error(), "the file needs recipient key "+a.ID()+" (ML-KEM-768 + X25519)") {
			t.Fatalf("%T: %v", kr, err)
		}
	}
	local := seal(t, testKey(t, 1), []byte("secret"), nil)
	if _, err := openAll(local, a); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "but recipient key "+a.ID()) {
		t.Fatalf("local file, recipient key: %v", err)
	}
	// The right key in a key ring.
	if got, err := openAll(ct, Keyring{testKey(t, 1), a}); err != nil || string(got) != "secret" {
		t.Fatal(err)
	}
}

// TestRecipientTampering: a modified wrapped key (encapsulation or sealed
// data key), fixed part or length field never yields a data key.
func TestRecipientTampering(t *testing.T) {
	for _, kem := range recipientKEMs {
		id := testIdentity(t, kem, 1)
		pt := pseudoRandom(3000, 1)
		for _, later := range []bool{false, true} {
			ct := seal(t, id.Recipient(), pt, &Options{SegmentSize: 1024, Size: 3000, SizeKnown: true})
			if later {
				ct = sealLater(t, id.Recipient(), pt, &Options{SegmentSize: 1024})
			}
			h, err := ReadHeader(bytes.NewReader(ct))
			if err != nil {
				t.Fatal(err)
			}
			wrapAt := h.Len() - len(h.WrappedKey)
			spec, _ := kemByName(kem)
			for name, at := range map[string]int{
				"content type":     9,
				"segment size":     14,
				"salt":             30,
				"nonce prefix":     60,
				"encapsulated key": wrapAt + 3,
				"last enc byte":    wrapAt + spec.encLen - 1,
				"sealed data key":  wrapAt + spec.encLen + 5,
				"wrap tag":         h.Len() - 1,
			} {
				bad := bytes.Clone(ct)
				bad[at] ^= 0x10
				_, err := openAll(bad, id)
				if !errors.Is(err, ErrCorruptHeader) || strings.Contains(err.Error(), "segment") {
					t.Fatalf("%s, two-phase %v, %s modified: %v", kem, later, name, err)
				}
			}
			// The length field: the wrap binds it, or with two-phase
			// writing the payload key does.
			bad := bytes.Clone(ct)
			bad[23] ^= 1
			if _, err := openAll(bad, id); err == nil {
				t.Fatalf("%s: modified length accepted", kem)
			}
			// A wrapped key of the wrong length.
			short := append(bytes.Clone(ct[:wrapAt-2]), byte((len(h.WrappedKey)-1)>>8), byte(len(h.WrappedKey)-1))
			short = append(short, h.WrappedKey[:len(h.WrappedKey)-1]...)
			short = append(short, ct[h.Len():]...)
			if _, err := openAll(short, id); !errors.Is(err, ErrCorruptHeader) || !strings.Contains(err.Error(), "wraps to") {
				t.Fatalf("%s: short wrapped key: %v", kem, err)
			}
		}
	}
}

// TestRecipientText: the text form round-trips, tolerates the line breaks
// a mail client adds, and rejects changed characters, foreign prefixes and
// wrong lengths with a message saying so.
func TestRecipientText(t *testing.T) {
	for _, kem := range recipientKEMs {
		r := testIdentity(t, kem, 1).Recipient()
		s := r.String()
		wantPrefix := map[string]string{KEMX25519: "ppml1", KEMMLKEM768X25519: "ppmlpq1"}[kem]
		if !strings.HasPrefix(s, wantPrefix) || !LooksLikeRecipient(s) {
			t.Fatalf("%s: %s", kem, s[:20])
		}
		var wrapped strings.Builder
		for i := 0; i < len(s); i += 70 {
			wrapped.WriteString(s[i:min(len(s), i+70)] + "\r\n  ")
		}
		for _, text := range []string{s, strings.ToUpper(s), " " + s + "\n", wrapped.String()} {
			got, err := ParseRecipient(text)
			if err != nil || got.ID() != r.ID() || got.KEM() != kem || !bytes.Equal(got.Bytes(), r.Bytes()) {
				t.Fatalf("%s: %v", kem, err)
			}
		}
		flipped := []byte(s)
		if flipped[20] == 'q' {
			flipped[20] = 'p'
		} else {
			flipped[20] = 'q'
		}
		if _, err := ParseRecipient(string(flipped)); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("%s: changed character: %v", kem, err)
		}
	}
	for text, want := range map[string]string{
		"":                    "empty",
		"age1qqqqqqqqqqqqqqq": "not a ppml public key",
		"kms://h/k":           "not a ppml public key",
	} {
		if _, err := ParseRecipient(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", text, err)
		}
	}
	// A valid encoding of the wrong length for its type.
	if _, err := NewRecipient(KEMX25519, make([]byte, 33)); err == nil || !strings.Contains(err.Error(), "33 bytes, want 32") {
		t.Fatal(err)
	}
	if _, err := NewRecipient("rsa", nil); err == nil || !strings.Contains(err.Error(), "unknown recipient key type") {
		t.Fatal(err)
	}
}

// The fuzz targets keep their inputs small (an ML-KEM-768 + X25519 key is
// 1959 characters, its wrapped data key 1168 bytes): the fuzzer minimizes
// every new input, and large ones stall it for a minute each. Text forms
// are fuzzed on X25519 keys (the prefix picks the KEM, the rest is the
// same code); wrapped keys of both KEMs are fuzzed as edits of a genuine one.

func FuzzParseRecipient(f *testing.F) {
	f.Add(testIdentity(f, KEMX25519, 1).Recipient().String())
	f.Add("ppmlpq1qqqqqqqqqqqqqqqqqq")
	f.Add("PPML1QQQQQQ")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecipient(s)
		if err != nil {
			return
		}
		again, err := ParseRecipient(r.String())
		if err != nil || again.ID() != r.ID() || !bytes.Equal(again.Bytes(), r.Bytes()) {
			t.Fatalf("%q parses, but its canonical form does not parse back: %v", s, err)
		}
	})
}

// FuzzRecipientUnwrap offers both KEMs' private keys a genuine wrapped key
// changed by edits (pairs of a 16-bit position and a byte XORed in there),
// cut or extended to a length, with fuzzed associated data: no panic, an
// error is ErrCorruptHeader, and only the genuine wrapped key with its
// associated data yields the data key.
func FuzzRecipientUnwrap(f *testing.F) {
	type genuine struct {
		id          *Identity
		dk, wrapped []byte
	}
	aad := bytes.Repeat([]byte{7}, fixedLen)
	var gs []genuine
	for _, kem := range recipientKEMs {
		id := testIdentity(f, kem, 1)
		dk, wrapped, _, err := id.Recipient().NewDataKey(aad)
		if err != nil {
			f.Fatal(err)
		}
		gs = append(gs, genuine{id, dk, wrapped})
	}
	f.Add(uint8(0), []byte{}, uint16(0), aad)
	f.Add(uint8(1), []byte{0, 3, 1}, uint16(0), aad)
	f.Add(uint8(0), []byte{4, 100, 0x80}, uint16(1168), aad[:10])
	f.Fuzz(func(t *testing.T, which uint8, edits []byte, length uint16, ad []byte) {
		g := gs[int(which)%len(gs)]
		w := bytes.Clone(g.wrapped)
		if length != 0 {
			w = append(w, make([]byte, max(0, int(length)-len(w)))...)[:length]
		}
		for i := 0; i+2 < len(edits) && len(w) > 0; i += 3 {
			w[(int(edits[i])<<8|int(edits[i+1]))%len(w)] ^= edits[i+2]
		}
		dk, err := g.id.UnwrapDataKey(g.id.Ref(), w, ad)
		genuineInput := bytes.Equal(w, g.wrapped) && bytes.Equal(ad, aad)
		switch {
		case err != nil && !errors.Is(err, ErrCorruptHeader):
			t.Fatalf("error is not ErrCorruptHeader: %v", err)
		case err == nil && !genuineInput:
			t.Fatal("a modified wrapped key or other associated data unwrapped")
		case err == nil && !bytes.Equal(dk, g.dk):
			t.Fatal("unwrapped another data key")
		case err != nil && genuineInput:
			t.Fatalf("the genuine wrapped key does not unwrap: %v", err)
		}
	})
}
