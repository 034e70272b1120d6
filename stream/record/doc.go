// Package record implements ppml's encrypted stream record (version 1,
// specified in docs/formats/stream-record.md): one message on Kafka, NATS
// JetStream or Redis Streams, or one entry of a record file.
//
// A record names its stream and partition, its writer (a 16-byte id) and
// the writer's sequence number for that partition, the key that wrapped the
// writer's data key, and carries the wrapped data key itself, so any record
// can be opened on its own. The body is AES-256-GCM under a key derived
// from the data key; the whole header is the associated data, and the nonce
// is the partition and the sequence number. A record read from a stream or
// partition other than the one it names is rejected, as is one whose bytes
// were changed; a reader that tracks the last sequence number of each
// writer (the stream engine does) detects reordering and replays.
//
//	w, _ := record.NewWriter("payments", key, nil) // fresh data key per writer
//	msg, _ := w.Seal(3, eventTime, body)           // partition 3, next sequence number
//
//	o := record.NewOpener(keys)
//	r, err := o.Open("payments", 3, msg) // errors name what is wrong
package record
