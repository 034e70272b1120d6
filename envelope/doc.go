// Package envelope implements the ppml protected-file format (version 1,
// specified in docs/formats/envelope.md): a header naming the key-encryption
// key and carrying the wrapped per-file data key, then a body of AES-256-GCM
// segments keyed by HKDF-SHA256 from the data key, a per-file salt and a
// digest of the header, with nonce = prefix ‖ counter ‖ last-segment flag.
//
// Writing needs a KeyWrapper (fresh data key + wrapped form + key
// reference); reading needs a KeyResolver (reference + wrapped key → data
// key). LocalKey implements both for local key files (package keyfile); a
// Recipient (public key) only wraps and its Identity (private key) unwraps,
// with HPKE; the key service implements them for kms:// references.
//
// Regular files go the positional way: FileWriter.ReadFromAt and
// File.WriteAllAt read, seal or open, and write each segment on one of
// several goroutines with one ReadAt and one WriteAt.
//
//	w, _ := envelope.CreateFile("people.csv.ppml", key, &envelope.Options{ContentType: envelope.TypeCSV}, false)
//	defer w.Abort()
//	io.Copy(w, src)
//	err := w.Close() // atomic: fsync + rename
//
//	f, _ := envelope.OpenFile("people.csv.ppml", key) // io.ReadSeeker + io.ReaderAt
//
// Readers release plaintext only from segments that authenticated, and report
// a wrong key as ErrWrongKey before touching the body.
package envelope
