package store

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeHead feeds the state head parser arbitrary bodies with a valid
// MAC (an attacker cannot make one, but the parser must not rely on it):
// it never panics, and a head it accepts encodes to a head that decodes to
// the same thing.
func FuzzDecodeHead(f *testing.F) {
	db := &DB{stateKey: bytes.Repeat([]byte{7}, 32)}
	good := db.encodeHead(&head{version: 9, time: 1, buckets: map[string]*bucketSum{"keys": {count: 2}, "_audit/entries": {count: 5}}})
	f.Add(good[:len(good)-32])
	empty := db.encodeHead(&head{buckets: map[string]*bucketSum{}})
	f.Add(empty[:len(empty)-32])
	f.Add([]byte(headMagic))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := db.mac()
		m.Write([]byte{'h'})
		m.Write(body)
		got, err := db.decodeHead(m.Sum(bytes.Clone(body)))
		if err != nil {
			return
		}
		again, err := db.decodeHead(db.encodeHead(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("accepted head does not survive encoding: %v", err)
		}
	})
}
