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


def _go_bytes(b):
    return "[" + " ".join(str(x) for x in bytes(b)) + "]"  # Go's %v of a []byte


def _match(calculated, expected):
    if bytes(calculated) != bytes(expected):
        raise VerificationError(f"calculated root:\n{_go_bytes(calculated)}\n does not match expected root:\n"
                                f"{_go_bytes(expected)}")


def _decomp(index, size):
    inner = (index ^ (size - 1)).bit_length()
    return inner, bin(index >> inner).count("1")


def _chain_inner(seed, proof, index):
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if not (index >> i) & 1 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed, proof, index):
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed, proof):
    for h in proof:
        seed = node_hash(h, seed)
    return seed


# The two verifiers below are the algorithms of Go's github.com/transparency-dev/merkle/proof
# (RFC 9162 section 2.1.3.2 and 2.1.4.2) with the same checks in the same order and the same
# error text, so that an audit problem that quotes a failed proof reads as Go's.

def verify_inclusion(index, size, leaf, proof, expected_root):
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` leaves whose
    root is ``expected_root``. Raises VerificationError."""
    if index >= size:
        raise VerificationError(f"index is beyond size: {index} >= {size}")
    if len(leaf) != 32:
        raise VerificationError(f"leafHash has unexpected size {len(leaf)}, want 32")
    inner, border = _decomp(index, size)
    if len(proof) != inner + border:
        raise VerificationError(f"wrong proof size {len(proof)}, want {inner + border}")
    r = _chain_inner(bytes(leaf), [bytes(p) for p in proof[:inner]], index)
    r = _chain_border_right(r, [bytes(p) for p in proof[inner:]])
    _match(r, expected_root)


def verify_consistency(size1, size2, proof, root1, root2):
    """Check that the tree of size1 with root1 is a prefix of the tree of size2 with root2.
    Raises VerificationError."""
    proof = [bytes(p) for p in proof]
    if size2 < size1:
        raise VerificationError(f"size2 ({size1}) < size1 ({size2})")  # sic: Go's argument order
    if size1 == size2:
        if proof:
            raise VerificationError("size1=size2, but proof is not empty")
        _match(root1, root2)
        return
    if size1 == 0:
        if proof:
            raise VerificationError(f"expected empty proof, but got {len(proof)} components")
        return
    if not proof:
        raise VerificationError("empty proof")
    inner, border = _decomp(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    seed, start = proof[0], 1
    if size1 == 1 << shift:
        seed, start = bytes(root1), 0
    if len(proof) != start + inner + border:
        raise VerificationError(f"wrong proof size {len(proof)}, want {start + inner + border}")
    proof = proof[start:]
    mask = (size1 - 1) >> shift
    h1 = _chain_border_right(_chain_inner_right(seed, proof[:inner], mask), proof[inner:])
    _match(h1, root1)
    h2 = _chain_border_right(_chain_inner(seed, proof[:inner], mask), proof[inner:])
    _match(h2, root2)
