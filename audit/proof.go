package audit

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is the RFC 6962 SHA-256 hasher of the log's Merkle tree.
var hasher = rfc6962.DefaultHasher

var rf = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash returns the RFC 6962 leaf hash of an encoded entry.
func LeafHash(encoded []byte) []byte { return hasher.HashLeaf(encoded) }

// HashChildren returns the RFC 6962 hash of an inner node.
func HashChildren(left, right []byte) []byte { return hasher.HashChildren(left, right) }

// EmptyRoot is the root hash of the empty tree.
func EmptyRoot() []byte { return hasher.EmptyRoot() }

// VerifyInclusion checks that the encoded entry is at index in the tree of head.
func VerifyInclusion(encoded []byte, index uint64, p [][]byte, head *TreeHead) error {
	if err := proof.VerifyInclusion(hasher, index, head.Size, LeafHash(encoded), p, head.RootHash); err != nil {
		return fmt.Errorf("audit: entry %d is not in the tree of size %d: %w", index, head.Size, err)
	}
	return nil
}

// VerifyConsistency checks that older is a prefix of newer. Both heads'
// signatures must be checked separately.
func VerifyConsistency(older, newer *TreeHead, p [][]byte) error {
	if string(older.LogID) != string(newer.LogID) {
		return errors.New("audit: tree heads are of different logs")
	}
	if older.Size > newer.Size {
		return fmt.Errorf("audit: tree head of size %d is newer than the one of size %d", older.Size, newer.Size)
	}
	if err := proof.VerifyConsistency(hasher, older.Size, newer.Size, p, older.RootHash, newer.RootHash); err != nil {
		return fmt.Errorf("audit: tree of size %d is not a prefix of the tree of size %d: %w", older.Size, newer.Size, err)
	}
	return nil
}
