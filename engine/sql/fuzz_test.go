package sqlengine

import "testing"

func FuzzParseAESKey(f *testing.F) {
	for _, s := range []string{"0123456789012345", "hex:31323334353637383930313233343530", "base64:MTIzNDU2Nzg5MDEyMzQ1MQ==", "hex:zz", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseAESKey(b)
		if err == nil && !validAES(len(k)) {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}
