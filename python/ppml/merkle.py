"""RFC 6962 / RFC 9162 Merkle tree hashing and proof verification (SHA-256), as the audit log
uses them (Go: github.com/transparency-dev/merkle with the RFC 6962 hasher)."""
import hashlib

from .errors import VerificationError

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaf_hashes):
    """The Merkle tree hash of a list of leaf hashes (RFC 6962 section 2.1), computed with a
    compact range in O(n) time and O(log n) memory."""
    stack = []  # (height, hash) of perfect subtrees, strictly decreasing heights
    for h in leaf_hashes:
        node, height = h, 0
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
    if not stack:
        return EMPTY_ROOT
    node = stack.pop()[1]
    while stack:
        node = node_hash(stack.pop()[1], node)
    return node


class Roots:
    """Roots of growing prefixes: append leaf hashes, ask for the root at any point."""

    def __init__(self):
        self._stack = []
        self.size = 0

    def append(self, h):
        node, height = h, 0
        while self._stack and self._stack[-1][0] == height:
            node = node_hash(self._stack.pop()[1], node)
            height += 1
        self._stack.append((height, node))
        self.size += 1

    def root(self):
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            node = node_hash(h, node)
        return node


def verify_inclusion(index, size, leaf, proof, expected_root):
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` leaves whose
    root is ``expected_root`` (RFC 9162 section 2.1.3.2). Raises VerificationError."""
    if index >= size:
        raise VerificationError(f"index {index} is beyond the tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError(f"inclusion proof has {len(proof)} hashes, too many for index {index} in size {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(f"inclusion proof has {len(proof)} hashes, too few for index {index} in size {size}")
    if r != expected_root:
        raise VerificationError(f"calculated root {r.hex()} does not match the expected root {bytes(expected_root).hex()}")


def verify_consistency(size1, size2, proof, root1, root2):
    """Check that the tree of size1 with root1 is a prefix of the tree of size2 with root2
    (RFC 9162 section 2.1.4.2). Raises VerificationError."""
    if size2 < size1:
        raise VerificationError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == size2:
        if proof:
            raise VerificationError("size1 = size2, but the proof is not empty")
        if root1 != root2:
            raise VerificationError(f"roots differ for equal sizes: {bytes(root1).hex()} and {bytes(root2).hex()}")
        return
    if size1 == 0:
        if proof:
            raise VerificationError(f"expected an empty proof for size1 = 0, got {len(proof)} hashes")
        return
    if not proof:
        raise VerificationError("empty consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    if fr != root1:
        raise VerificationError(f"consistency proof gives root {fr.hex()} for the older tree, not {bytes(root1).hex()}")
    if sr != root2:
        raise VerificationError(f"consistency proof gives root {sr.hex()} for the newer tree, not {bytes(root2).hex()}")
