// Package audit is what owners, auditors and TEEs need of the key
// service's append-only audit log: its entries, signed tree heads,
// inclusion and consistency proofs, and offline verification of exports.
// It holds no storage: the server keeps the log in its store (package
// kms/auditlog), and nothing here links a database.
//
// Entries are canonical JSON records (Entry) and the leaves of an RFC 6962
// Merkle tree (SHA-256). Tree heads are signed by ECDSA P-256 or Ed25519
// (TreeHead, SignTreeHead). An export (docs/formats/audit-log.md) is a
// header with a signed tree head and kept checkpoints, then one line per
// entry; VerifyExport checks a copy with nothing but the public key and
// reports exactly where a tampered copy breaks. A receipt is an entry, a
// signed tree head and an inclusion proof (VerifyInclusion); an owner who
// kept a tree head checks that the log only grew with VerifyConsistency.
package audit
