"""The audit verifier against Go's: exports, tree heads and proofs made by Go's audit package
(through the gointerop helper) verify in Python, and every tampered copy yields the same list of
problems (kind, entry index, line and sentence) in Python as in audit.VerifyExport."""
import json
import random

import pytest

import ppml
from ppml import audit, gojson, merkle


def lines(b):
    return b.decode().rstrip("\n").split("\n")


def join(ls):
    return ("\n".join(ls) + "\n").encode()


def edit(line, **changes):
    """Edit an entry and re-encode it canonically, as a careful forger would."""
    e = audit.Entry.decode(line.encode())
    for k, v in changes.items():
        setattr(e, k, v)
    return e.encode().decode()


def _detail(d):
    # Sentences quoting a JSON decoder's own error text are compared up to that text.
    for prefix in ("header is not valid: ", "not a valid entry: "):
        if d.startswith(prefix):
            return prefix + "…"
    return d


def problems(res):
    return [(p.kind, p.index, p.line, _detail(p.detail)) for p in res.problems]


def go_problems(r):
    return [(p["kind"], p["index"], p.get("line", 0), _detail(p["detail"])) for p in r["problems"]]


@pytest.fixture(scope="module", params=["ecdsa", "ed25519"])
def log(request, tmp_path_factory, gointerop):
    d = tmp_path_factory.mktemp("log-" + request.param)
    gointerop("audit-export", "-dir", d, "-signer", request.param, "-entries", 10, "-prefix", 4)
    return d


def compare(tmp_path, gointerop, log, cases, trusted=()):
    """Verify each case in Go and in Python; the problem lists must be identical."""
    names = sorted(cases)
    for i, n in enumerate(names):
        (tmp_path / f"c{i}").write_bytes(cases[n])
    args = ["audit-verify", "-pub", log / "audit.pub"]
    for t in trusted:
        args += ["-trusted", t]
    go = gointerop(*args, *[tmp_path / f"c{i}" for i in range(len(names))])
    pub = (log / "audit.pub").read_bytes()
    heads = [audit.TreeHead.from_json(open(t, "rb").read()) for t in trusted]
    out = {}
    for n, g in zip(names, go):
        res = audit.check_export(cases[n], pub, heads)
        assert problems(res) == go_problems(g), n
        assert res.entries == g["entries"], n
        out[n] = res
    return out


def test_intact(log, tmp_path, gointerop):
    data = (log / "export.jsonl").read_bytes()
    res = audit.verify_export(data, (log / "audit.pub").read_bytes())
    assert res.entries == res.tree_head.size == 10
    for line in lines(data)[1:]:  # the canonical encoder gives back every byte Go wrote
        assert audit.Entry.decode(line.encode()).encode().decode() == line


def test_tamper_cases(log, tmp_path, gointerop):
    orig = lines((log / "export.jsonl").read_bytes())
    n = 10
    hdr = json.loads(orig[0])

    def mutate(fn):
        return join(fn(list(orig)))

    def set_line(i, value):
        return lambda ls: ls[:i] + [value] + ls[i + 1:]

    leaf = lambda s: merkle.leaf_hash(s.encode())
    renumber = lambda ls, frm, d: ls[:frm] + [edit(l, index=json.loads(l)["index"] + d) for l in ls[frm:]]
    bad_head = dict(hdr, tree_head=dict(hdr["tree_head"], size=n + 1))
    cases = {
        "intact": join(orig),
        "modified entry": mutate(set_line(5, edit(orig[5], measurement=bytes.fromhex("ab" * 32)))),
        "modified decision": mutate(set_line(4, orig[4].replace('"decision":"deny"', '"decision":"allow"'))),
        "not canonical": mutate(set_line(3, orig[3].replace('","', '", "', 1))),
        "modified first": mutate(set_line(1, edit(orig[1], tenant="mallory"))),
        "modified last": mutate(set_line(n, edit(orig[n], request_id="forged"))),
        "modified link": mutate(set_line(7, edit(orig[7], prev=bytes(32)))),
        "deleted": mutate(lambda ls: ls[:6] + ls[7:]),
        "deleted first": mutate(lambda ls: ls[:1] + ls[2:]),
        "deleted several": mutate(lambda ls: ls[:3] + ls[6:]),
        "inserted, renumbered": mutate(lambda ls: ls[:6] + [edit(ls[5], index=5, prev=leaf(ls[5]), reason="forged")]
                                       + renumber(ls, 6, 1)[6:]),
        "deleted, renumbered": mutate(lambda ls: renumber(ls, 7, -1)[:6] + renumber(ls, 7, -1)[7:]),
        "deleted, later link skips": mutate(lambda ls: ls[:5] + [ls[6], edit(ls[7], prev=leaf(ls[4]))] + ls[8:]),
        "reordered": mutate(lambda ls: ls[:4] + [ls[5], ls[4]] + ls[6:]),
        "truncated": mutate(lambda ls: ls[:1 + n - 3]),
        "truncated to nothing": join(orig[:1]),
        "extra": mutate(lambda ls: ls + [edit(ls[n], index=n)]),
        "duplicated": mutate(lambda ls: ls[:6] + [ls[5]] + ls[6:]),
        "malformed line": mutate(set_line(9, "not json")),
        "empty line": mutate(set_line(9, "")),
        "bad signature": mutate(set_line(0, json.dumps(bad_head, separators=(",", ":")))),
        "not an export": b"{}\n",
        "empty": b"",
        "header only newline": b"\n",
        "wrong format": mutate(set_line(0, orig[0].replace("ppml-audit-log", "other-log"))),
        "unknown header field": mutate(set_line(0, orig[0][:-1] + ',"extra":1}')),
        "header trailing garbage": mutate(set_line(0, orig[0] + " garbage")),
        "no tree head": mutate(set_line(0, '{"format":"ppml-audit-log","version":1}')),
        "null checkpoint": mutate(set_line(0, orig[0][:-1] + ',"checkpoints":[null]}')),
        "upper-case hex": mutate(set_line(2, orig[2].replace(json.loads(orig[2])["prev"], json.loads(orig[2])["prev"].upper()))),
        "case-folded names": mutate(set_line(3, orig[3].replace('"index"', '"INDEX"'))),
        "duplicate index key": mutate(set_line(3, orig[3].replace('{"index":2', '{"index":7,"index":2'))),
        "odd prev": mutate(set_line(4, orig[4].replace('"prev":"', '"prev":"a'))),
        "no trailing newline": join(orig)[:-1],
        "CRLF": join(orig).replace(b"\n", b"\r\n"),
        "index as string": mutate(set_line(5, orig[5].replace('{"index":4', '{"index":"4"'))),
        "negative zero index": mutate(set_line(1, orig[1].replace('{"index":0', '{"index":-0'))),
        "float index": mutate(set_line(2, orig[2].replace('{"index":1', '{"index":1.0'))),
        "too long": mutate(set_line(6, orig[6][:-1] + ',"x":"' + "a" * (64 << 10) + '"}')),
        "NaN": mutate(set_line(6, orig[6].replace('"key_version":1', '"key_version":NaN'))),
        "time with offset": mutate(set_line(3, orig[3].replace('Z"', '+00:00"', 1))),
    }
    compare(tmp_path, gointerop, log, cases)
    res = audit.check_export(cases["modified decision"], (log / "audit.pub").read_bytes())
    assert (res.problems[0].kind, res.problems[0].index) == (audit.MODIFIED_ENTRY, 3)
    with pytest.raises(ppml.AuditTamperError, match="modified_entry at entry 3"):
        audit.verify_export(cases["modified decision"], (log / "audit.pub").read_bytes())


def test_wrong_key_rollback_and_fork(tmp_path, gointerop):
    d = tmp_path / "log"
    d.mkdir()
    gointerop("audit-export", "-dir", d, "-entries", 10, "-prefix", 4, "-fork-at", 5)
    other = tmp_path / "other"
    other.mkdir()
    gointerop("audit-export", "-dir", other, "-entries", 1)
    pub = (d / "audit.pub").read_bytes()
    # The export of a server rolled back to 4 entries, checked against today's head; a fork.
    for name, trusted, kind, text in (("prefix.jsonl", d / "head.json", audit.INCONSISTENT_HEAD, "truncated or rolled back"),
                                      ("fork.jsonl", d / "head.json", audit.INCONSISTENT_HEAD, "rewritten before entry 10")):
        audit.verify_export((d / name).read_bytes(), pub)  # verifies on its own
        res = compare(tmp_path, gointerop, d, {name: (d / name).read_bytes()}, trusted=[trusted])[name]
        assert res.problems[0].kind == kind and text in res.problems[0].detail
    with pytest.raises(ppml.AuditTamperError, match="bad_signature"):
        audit.verify_export((d / "export.jsonl").read_bytes(), (other / "audit.pub").read_bytes())
    # A tree head Python saved is accepted by Go as a trusted head.
    res = audit.verify_export((d / "export.jsonl").read_bytes(), pub)
    (tmp_path / "py-head.json").write_text(json.dumps(res.tree_head.to_json()))
    [g] = gointerop("audit-verify", "-pub", d / "audit.pub", "-trusted", tmp_path / "py-head.json", d / "export.jsonl")
    assert g["ok"]


def test_rewrite_localized_by_checkpoints(tmp_path, gointerop):
    d = tmp_path / "log"
    d.mkdir()
    gointerop("audit-export", "-dir", d, "-signer", "ed25519", "-entries", 12, "-checkpoint-every", 4)
    ls = lines((d / "export.jsonl").read_bytes())
    assert len(json.loads(ls[0])["checkpoints"]) == 3

    def relink(ls, frm):
        for i in range(frm, len(ls) - 1):
            ls[i + 1] = edit(ls[i + 1], prev=merkle.leaf_hash(ls[i].encode()))
        return ls

    c = list(ls)
    c[10] = edit(c[10], reason="forged")
    res = compare(tmp_path, gointerop, d, {"rewrite": join(relink(c, 10))})["rewrite"]
    assert (res.problems[0].kind, res.problems[0].index) == (audit.MODIFIED_ENTRY, 11)
    assert "entries 8 to 11 were rewritten" in res.problems[0].detail
    c = list(ls)
    c[5] = edit(c[5], reason="forged")
    compare(tmp_path, gointerop, d, {"early rewrite": join(relink(c, 5)), "checkpoint dropped": join(
        [ls[0].replace(',"checkpoints":[', ',"checkpoints":[null,', 1)] + ls[1:])})


def test_random_mutations_agree(tmp_path, gointerop):
    """A differential fuzz: random edits of a Go export give the same problems in both."""
    d = tmp_path / "log"
    d.mkdir()
    gointerop("audit-export", "-dir", d, "-signer", "ed25519", "-entries", 9, "-checkpoint-every", 3)
    ls = lines((d / "export.jsonl").read_bytes())
    r = random.Random(7)
    cases = {}
    for k in range(400):
        c = list(ls)
        for _ in range(r.randrange(1, 4)):
            op = r.randrange(7)
            i = r.randrange(1, len(c)) if len(c) > 1 else 0
            if op == 0 and len(c) > 1:
                del c[i]
            elif op == 1:
                c.insert(i, c[r.randrange(len(c))])
            elif op == 2 and len(c) > 2:
                j = r.randrange(1, len(c))
                c[i], c[j] = c[j], c[i]
            elif op == 3:
                i = 0 if r.random() < 0.15 else i  # the header, too
                b = bytearray(c[i].encode())
                b[r.randrange(len(b))] = r.choice(b'0123456789abcdef{}",:[] xZ\\')
                c[i] = b.decode("utf-8", "replace")
            elif op == 4 and i > 0:
                try:
                    c[i] = edit(c[i], **r.choice([{"reason": "x"}, {"index": r.randrange(12)}, {"prev": bytes(32)},
                                                 {"key_version": 2}, {"insecure": True}]))
                except ppml.VerificationError:
                    pass
            elif op == 5:
                c = c[:r.randrange(1, len(c) + 1)]
            elif op == 6 and i > 0:
                try:
                    c[i] = edit(c[i], prev=merkle.leaf_hash(c[r.randrange(1, len(c))].encode()))
                except ppml.VerificationError:
                    pass
        cases[f"m{k:03d}"] = join(c)
    res = compare(tmp_path, gointerop, d, cases)
    kinds = {p.kind for r in res.values() for p in r.problems}
    assert kinds >= {audit.MALFORMED_EXPORT, audit.BAD_SIGNATURE, audit.MALFORMED_ENTRY, audit.MODIFIED_ENTRY, audit.DELETED_ENTRY,
                     audit.REORDERED, audit.TRUNCATED, audit.EXTRA_ENTRY}, kinds


def test_proofs(tmp_path, gointerop):
    [p] = gointerop("audit-proofs", "-entries", 9, "-dir", tmp_path)
    pub = p["public_key"].encode()
    heads = [audit.TreeHead.from_json(json.dumps(h)) for h in p["heads"]]
    for h in heads:
        h.verify(pub)
    leaves = [merkle.leaf_hash(e.encode()) for e in p["entries"]]
    for size, h in enumerate(heads):
        assert merkle.root(leaves[:size]) == h.root_hash
    for c in p["inclusion"]:
        proof = [bytes.fromhex(x) for x in c["proof"]]
        head = heads[c["size"]]
        e = audit.verify_receipt(p["entries"][c["index"]].encode(), c["index"], proof, head, pub)
        assert e.index == c["index"]
        with pytest.raises(ppml.VerificationError):
            merkle.verify_inclusion(c["index"], c["size"], leaves[c["index"] - 1] if c["index"] else b"\0" * 32, proof,
                                    head.root_hash)
        if proof:
            with pytest.raises(ppml.VerificationError):
                merkle.verify_inclusion(c["index"], c["size"], leaves[c["index"]], proof[:-1], head.root_hash)
            bad = list(proof)
            bad[0] = bytes(32)
            with pytest.raises(ppml.VerificationError):
                merkle.verify_inclusion(c["index"], c["size"], leaves[c["index"]], bad, head.root_hash)
    for c in p["consistency"]:
        proof = [bytes.fromhex(x) for x in c["proof"]]
        audit.verify_consistency(heads[c["from"]], heads[c["to"]], proof, pub)
        if 0 < c["from"] < c["to"]:
            with pytest.raises(ppml.VerificationError):
                audit.verify_consistency(heads[c["from"] - 1] if c["from"] > 1 else heads[c["to"]], heads[c["to"]], proof)
            with pytest.raises(ppml.VerificationError):
                merkle.verify_consistency(c["from"], c["to"], proof[:-1] if proof else [bytes(32)],
                                          heads[c["from"]].root_hash, heads[c["to"]].root_hash)


def test_receipt_entry_with_html_characters(tmp_path, gointerop):
    """The key service sends a receipt's entry inside a JSON answer whose encoder escapes <, >
    and & (Go's default); Python re-encodes the entry canonically, so the leaf is the logged one."""
    [p] = gointerop("audit-proofs", "-entries", 5, "-dir", tmp_path)
    raw = p["entries"][3]
    assert "<by policy> &" in raw
    escaped = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    entry = audit.Entry.from_json(gojson.loads(escaped), strict=True)
    proof = next(c["proof"] for c in p["inclusion"] if c["index"] == 3 and c["size"] == 5)
    e = audit.verify_receipt(entry.encode(), 3, [bytes.fromhex(x) for x in proof],
                             audit.TreeHead.from_json(json.dumps(p["heads"][5])), p["public_key"])
    assert e.reason.startswith('TCB status "OutOfDate"')
    with pytest.raises(ppml.VerificationError):  # the escaped bytes themselves are not the leaf
        audit.verify_receipt(escaped.encode(), 3, [bytes.fromhex(x) for x in proof],
                             audit.TreeHead.from_json(json.dumps(p["heads"][5])), p["public_key"])


_SK = {}


def _python_log(tmp_path, edit=None):
    """A format 2 log built here, not by Go: entries with their trails' chain fields, a chain
    table replayed the verifier's way, a head signed with a fresh Ed25519 key. ``edit`` may
    change entry fields before each is hashed (a server writing wrong chain fields)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    sk = _SK.setdefault("k", ed25519.Ed25519PrivateKey.generate())
    pem = sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    trails = [("alice", "alice/a"), ("alice", ""), ("bob", "bob/x"), ("", "nobody/k"), ("alice", "alice/a")] * 2
    state, slots, lines, leaves, prev = {}, [], [], [], b""
    for i, (tenant, key) in enumerate(trails):
        e = audit.Entry(index=i, prev=prev, time=f"2026-11-21T06:00:{i:02d}Z", type="release", tenant=tenant, key=key)
        if tenant:
            st = state.setdefault((tenant, key), {"count": 0, "chain": b"", "slot": None, "last": 0})
            if st["slot"] is None:
                st["slot"] = len(slots)
                slots.append((tenant, key))
            e.key_seq, e.key_slot, e.key_chain = st["count"] + 1, st["slot"], st["chain"]
        if edit:
            edit(i, e)
        raw = e.encode()
        leaf = merkle.leaf_hash(raw)
        if tenant:
            st["count"] += 1
            st["last"] = i
            st["chain"] = audit.chain_step(st["chain"], leaf)
        lines.append(raw.decode())
        leaves.append(leaf)
        prev = leaf
    table = [audit.ChainHead(t, k, state[(t, k)]["count"], state[(t, k)]["last"], state[(t, k)]["chain"]).leaf_hash()
             for t, k in slots]
    head = audit.TreeHead(log_id=bytes(16), size=len(lines), root_hash=merkle.root(leaves), timestamp="2026-11-21T07:00:00Z",
                          key_id=audit.key_id(pem), algorithm=audit.ALG_ED25519, signature=b"",
                          chains=len(table), chain_root=merkle.root(table))
    head.signature = sk.sign(head.message())
    hdr = json.dumps({"format": "ppml-audit-log", "version": 2, "tree_head": head.to_json()}, separators=(",", ":"))
    (tmp_path / "audit.pub").write_bytes(pem)
    return join([hdr] + lines)


def test_chains_checked_alike(tmp_path, gointerop):
    """Format 2 logs written by Python verify in Go, and a log whose chain fields lie (signed by
    its own server) gives the same broken_chain problems in both."""
    good = _python_log(tmp_path)
    audit.verify_export(good, (tmp_path / "audit.pub").read_bytes())

    def wrong_seq(i, e):
        if i == 4:
            e.key_seq = 9

    def no_chain(i, e):
        if i == 6:
            e.key_seq, e.key_slot, e.key_chain = 0, 0, b""

    def stray_slot(i, e):
        if i == 3:
            e.key_slot = 2

    cases = {"good": good, "wrong seq": _python_log(tmp_path, wrong_seq), "chain dropped": _python_log(tmp_path, no_chain),
             "slot on no tenant": _python_log(tmp_path, stray_slot)}
    res = compare(tmp_path, gointerop, tmp_path, cases)
    assert res["good"].ok
    assert [(p.kind, p.index) for p in res["wrong seq"].problems] == [(audit.BROKEN_CHAIN, 4)]
    assert (res["chain dropped"].problems[0].kind, res["chain dropped"].problems[0].index) == (audit.BROKEN_CHAIN, 6)
    assert res["slot on no tenant"].problems[0].kind == audit.BROKEN_CHAIN
