"""Trail exports (`ppml audit export --key NAME` / `--tenant NAME`, audit format 2) verified
offline in Python exactly as Go's audit.VerifyTrail verifies them: a real key service on
127.0.0.1 writes the exports (through the Go CLI), Python and Go verify them, and every tampered
copy gives the same list of problems (kind, entry index, line, sentence) in both."""
import json
import random
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import ppml
from ppml import audit

from conftest import Server
from test_audit import _detail, edit, join, lines


@pytest.fixture(scope="module")
def trail(tmp_path_factory, ppml_bin):
    """A key service of its own (so the log's content is this module's), two owners' activity
    interleaved, a tree head kept half way, and trail exports written by `ppml audit export`."""
    d = tmp_path_factory.mktemp("trail")
    srv = Server(ppml_bin, str(d))
    try:
        admin = srv.service(srv.admin_token)
        admin.create_tenant("alice", "owner")
        admin.create_tenant("bob", "owner")
        tok = {"alice": admin.create_token("alice", "trail tests").token, "bob": admin.create_token("bob").token}
        alice, bob = srv.service(tok["alice"]), srv.service(tok["bob"])
        alice.create_key("alice/sales")
        bob.create_key("bob/x")
        alice.create_key("alice/hr")
        for i in range(4):
            alice.generate_data_key("alice/sales", b"a%d" % i)
            bob.generate_data_key("bob/x", b"b%d" % i)
            if i == 1:
                alice.generate_data_key("alice/hr", b"h")
        pub = admin.audit_public_key()
        (d / "audit.pub").write_bytes(pub)
        h1 = alice.audit_head(pub)
        (d / "h1.json").write_text(json.dumps(h1.to_json()))

        def export(token, out, *args):
            subprocess.run([ppml_bin, "audit", "export", "-o", str(d / out), *args], env=srv.env(token), check=True,
                           capture_output=True)
            return (d / out).read_bytes()

        early = export(tok["alice"], "early.trail", "--key", "alice/sales")
        alice.rotate_key("alice/sales")
        alice.set_policy("alice/sales", {"version": 1, "jobs": ["sha256:" + "ab" * 32],
                                         "platforms": {"sim": {"measurements": ["00" * 48]}}})
        for i in range(3):
            alice.generate_data_key("alice/sales", b"c%d" % i)
            bob.generate_data_key("bob/x", b"d%d" % i)
        admin.create_token("alice", "a second token")  # on alice's own trail (an administrator acted)
        h2 = alice.audit_head(pub)
        (d / "h2.json").write_text(json.dumps(h2.to_json()))
        yield {
            "dir": d, "pub": pub, "h1": h1, "h2": h2, "srv": srv, "tok": tok, "alice": alice, "admin": admin,
            "early": early,
            "sales": export(tok["alice"], "sales.trail", "--key", "alice/sales", "--trusted-head", str(d / "h1.json")),
            "two": export(tok["alice"], "two.trail", "--key", "alice/sales", "--key", "alice/hr"),
            "tenant": export(tok["alice"], "tenant.trail", "--tenant", "alice"),
            "bob": export(srv.admin_token, "bob.trail", "--key", "bob/x"),
        }
    finally:
        srv.stop()


def go_verify(gointerop, tmp_path, cases, pub, trusted=(), keys=(), tenant=""):
    names = sorted(cases)
    for i, n in enumerate(names):
        (tmp_path / f"t{i}").write_bytes(cases[n])
    (tmp_path / "verify.pub").write_bytes(pub)
    args = ["trail-verify", "-pub", tmp_path / "verify.pub"]
    for t in trusted:
        args += ["-trusted", t]
    for k in keys:
        args += ["-key", k]
    if tenant:
        args += ["-tenant", tenant]
    go = gointerop(*args, *[tmp_path / f"t{i}" for i in range(len(names))])
    assert len(go) == len(names)
    return dict(zip(names, go))


def compare(gointerop, tmp_path, cases, pub, trusted=(), keys=(), tenant=""):
    """Verify every case in Go and in Python: the problem lists must be identical."""
    go = go_verify(gointerop, tmp_path, cases, pub, trusted, keys, tenant)
    heads = [audit.TreeHead.from_json(open(t, "rb").read()) for t in trusted]
    out = {}
    for n, data in cases.items():
        res = audit.check_trail(data, pub, heads, keys, tenant)
        py = [(p.kind, p.index, p.line, _detail(p.detail)) for p in res.problems]
        g = [(p["kind"], p["index"], p.get("line", 0), _detail(p["detail"])) for p in go[n]["problems"]]
        assert py == g, n
        assert res.entries == go[n]["entries"], n
        if not py:
            assert [(t.tenant, t.key, t.count, t.last) for t in res.trails] == \
                   [(t["tenant"], t.get("key", ""), t["count"], t["last"]) for t in go[n]["trails"]], n
        out[n] = res
    return out


def test_real_exports_verify(trail, gointerop, tmp_path, ppml_bin):
    d, pub = trail["dir"], trail["pub"]
    res = audit.verify_trail(trail["sales"], pub, trusted=[trail["h1"]], keys=["alice/sales"], tenant="alice")
    got = {(t.tenant, t.key): t.count for t in res.trails}
    # key_create, 4 + 3 data keys, key_rotate, policy_set; alice's own trail: tenant, tokens.
    assert got[("alice", "alice/sales")] == 10 and ("alice", "") in got and len(got) == 2
    assert res.entries == sum(got.values()) and res.tree_head.v2
    assert {(t.tenant, t.key) for t in audit.verify_trail(trail["two"], pub, keys=["alice/sales", "alice/hr"]).trails} \
        == {("alice", "alice/sales"), ("alice", "alice/hr"), ("alice", "")}
    assert [(t.tenant, t.key) for t in audit.verify_trail(trail["tenant"], pub, tenant="alice").trails] == [("alice", "")]
    audit.verify_trail(trail["bob"], pub, keys=["bob/x"], tenant="bob")
    # Whichever export it is, verify_any picks the verifier, as `ppml audit verify --file` does.
    assert audit.verify_any(trail["early"], pub, keys=["alice/sales"]).tree_head.size == trail["h1"].size
    with pytest.raises(ppml.VerificationError, match="whole-log export"):
        audit.verify_any(trail["admin"].audit_export(), pub, keys=["alice/sales"])
    # The same in Go, result for result.
    compare(gointerop, tmp_path, {k: trail[k] for k in ("sales", "two", "tenant", "bob", "early")}, pub)
    compare(gointerop, tmp_path, {"sales": trail["sales"]}, pub, trusted=[d / "h1.json"], keys=["alice/sales"],
            tenant="alice")
    # The CLI's own verdict on the file it wrote, and the client's export verified in Python.
    r = subprocess.run([ppml_bin, "audit", "verify", "--file", d / "sales.trail", "--public-key", d / "audit.pub",
                        "--key", "alice/sales", "--trusted-head", d / "h1.json", "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stderr
    alice = trail["alice"]
    live = alice.audit_verify_trail(pub, keys=["alice/sales"], trusted=[trail["h1"], trail["h2"]])
    assert live.tree_head.size >= trail["h2"].size
    with pytest.raises(ppml.KeyServiceError) as ei:  # an owner cannot export another tenant's trail
        alice.audit_trail(keys=["bob/x"])
    assert ei.value.status in (403, 404)


def test_tampered_trails_fail_alike(trail, gointerop, tmp_path):
    """Dropped, reordered, changed, inserted and cut entries, a rolled-back log, a header that
    lies, and the wrong public key: the same problems in Python as in Go."""
    d, pub = trail["dir"], trail["pub"]
    orig = lines(trail["sales"])
    hdr = json.loads(orig[0])
    sales = [i for i, l in enumerate(orig) if i and json.loads(l).get("key") == "alice/sales"]
    own = [i for i, l in enumerate(orig) if i and "key" not in json.loads(l)]
    bob = lines(trail["bob"])[1:]
    assert len(sales) == 10 and len(own) >= 3

    def without(*idx):
        return join([l for i, l in enumerate(orig) if i not in idx])

    def header(**changes):
        h = json.loads(orig[0])
        for k, v in changes.items():
            h[k] = v
        return join([json.dumps(h, separators=(",", ":"))] + orig[1:])

    def trail_field(n, **changes):
        ts = [dict(t) for t in hdr["trails"]]
        ts[n].update(changes)
        return header(trails=ts)

    def swap(i, j):
        ls = list(orig)
        ls[i], ls[j] = ls[j], ls[i]
        return join(ls)

    def put(i, line):
        return join(orig[:i] + [line] + orig[i + 1:])

    mid = sales[4]
    newest = sales[-1]
    cases = {
        "intact": join(orig),
        "dropped entry": without(mid),
        "dropped first": without(sales[0]),
        "dropped newest": without(newest),
        "dropped newest two": without(sales[-2], newest),
        "dropped own newest": without(own[-1]),
        "reordered": swap(sales[2], sales[3]),
        "reordered across trails": swap(own[0], sales[0]) if own[0] < sales[0] else swap(sales[0], own[0]),
        "changed field, re-encoded": put(mid, edit(orig[mid], key_version=7)),
        "changed newest, re-encoded": put(newest, edit(orig[newest], actor="someone else")),
        "changed field, not canonical": put(mid, orig[mid].replace('"decision":"allow"', '"decision": "allow"')),
        "changed type": put(mid, orig[mid].replace('"type":"data_key"', '"type":"decrypt"')),
        "chain field changed": put(mid, edit(orig[mid], key_chain=bytes(32))),
        "slot changed": put(mid, edit(orig[mid], key_slot=9)),
        "seq changed": put(mid, edit(orig[mid], key_seq=3)),
        "duplicated line": join(orig[:mid + 1] + [orig[mid]] + orig[mid + 1:]),
        "entry of another trail": join(orig + [bob[-1]]),
        "entry of no tenant": join(orig + ['{"index":1,"time":"2026-11-21T06:00:00Z","type":"denial","key":"x/y"}']),
        "beyond the head": join(orig + [edit(orig[newest], index=hdr["tree_head"]["size"] + 5)]),
        "not json": put(mid, "not json"),
        "too long": put(mid, orig[mid][:-1] + ',"x":"' + "a" * (64 << 10) + '"}'),
        "cut to the header": join(orig[:1]),
        "count changed": trail_field(0, count=hdr["trails"][0]["count"] - 1),
        "last changed": trail_field(0, last=hdr["trails"][0]["last"] - 1),
        "slot proof dropped": trail_field(0, slot_proof=[]),
        "last proof dropped": trail_field(0, last_proof=hdr["trails"][0]["last_proof"][:-1]),
        "chain zero": trail_field(0, chain="00" * 32),
        "chain short": trail_field(0, chain="00"),
        "no tenant": trail_field(0, tenant=""),
        "null trail": header(trails=hdr["trails"] + [None]),
        "trail twice": header(trails=hdr["trails"] + [hdr["trails"][0]]),
        "trail dropped from header": header(trails=hdr["trails"][:1]),
        "consistency dropped": header(consistency=[]),
        "consistency wrong": header(consistency=[{"from": c["from"], "proof": c["proof"][::-1]} for c in hdr["consistency"]]),
        "head signed size changed": header(tree_head=dict(hdr["tree_head"], size=hdr["tree_head"]["size"] + 1)),
        "head without chains": header(tree_head={k: v for k, v in hdr["tree_head"].items() if k not in ("chains", "chain_root")}),
        "wrong format": header(format="ppml-audit-log"),
        "unknown header field": header(extra=1),
        "unknown trail field": trail_field(0, extra=1),
        "empty": b"",
        "invalid UTF-8 in an entry": join(orig).replace(b'"type":"key_create"', b'"type":"key_create\xff"'),
        "lone surrogate in an entry": put(mid, orig[mid].replace('"decision":"allow"', '"decision":"allow\\udc80"')),
        "invalid UTF-8 in a trail": join(orig).replace(b'"tenant":"alice"', b'"tenant":"\xe2\x82lice"', 1),
        "whole-log export": trail["admin"].audit_export(),
    }
    res = compare(gointerop, tmp_path, cases, pub, trusted=[d / "h1.json"], keys=["alice/sales"], tenant="alice")
    first = {n: (r.problems[0].kind if r.problems else None) for n, r in res.items()}
    assert first["intact"] is None
    assert first["dropped entry"] == audit.DELETED_ENTRY
    assert first["dropped newest"] == audit.TRUNCATED
    assert first["reordered"] == audit.REORDERED
    assert first["changed field, re-encoded"] == audit.MODIFIED_ENTRY
    assert first["changed field, not canonical"] == audit.MODIFIED_ENTRY
    assert first["entry of another trail"] == audit.EXTRA_ENTRY
    assert first["count changed"] == audit.INCONSISTENT_HEAD
    assert first["head signed size changed"] == audit.BAD_SIGNATURE
    assert first["whole-log export"] == audit.MALFORMED_EXPORT
    with pytest.raises(ppml.AuditTamperError, match="deleted_entry"):
        audit.verify_trail(cases["dropped entry"], pub)

    # A server rolled back to the earlier log: its (genuine) export is older than a head we kept.
    rolled = compare(gointerop, tmp_path, {"early": trail["early"]}, pub, trusted=[d / "h2.json"])["early"]
    assert rolled.problems[0].kind == audit.INCONSISTENT_HEAD and "rolled back" in rolled.problems[0].detail
    # An export made without giving the kept head holds no proof that the log extends it.
    res = compare(gointerop, tmp_path, {"no proof": trail["two"], "with proof": trail["sales"]}, pub,
                  trusted=[d / "h1.json", d / "h2.json"])
    assert res["no proof"].problems[0].kind == audit.INCONSISTENT_HEAD and res["with proof"].ok
    # Another key service's public key (or a head re-signed by it): a bad signature.
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    res = compare(gointerop, tmp_path, {"wrong key": trail["sales"]}, other)
    assert res["wrong key"].problems[0].kind == audit.BAD_SIGNATURE
    # A trail the verifier asks for that the export does not hold.
    res = compare(gointerop, tmp_path, {"missing": trail["sales"]}, pub, keys=["alice/hr"], tenant="bob")
    assert [p.kind for p in res["missing"].problems] == [audit.MISSING_TRAIL] * 2


def test_random_mutations_agree(trail, gointerop, tmp_path):
    """A differential fuzz: random edits of a real trail export give the same problems in both."""
    orig = lines(trail["two"])
    r = random.Random(11)
    cases = {}
    for k in range(250):
        c = list(orig)
        for _ in range(r.randrange(1, 4)):
            op = r.randrange(6)
            i = r.randrange(1, len(c)) if len(c) > 1 else 0
            if op == 0 and len(c) > 1:
                del c[i]
            elif op == 1:
                c.insert(i, c[r.randrange(len(c))])
            elif op == 2 and len(c) > 2:
                j = r.randrange(1, len(c))
                c[i], c[j] = c[j], c[i]
            elif op == 3:
                i = 0 if r.random() < 0.3 else i  # the header, too
                b = bytearray(c[i].encode())
                b[r.randrange(len(b))] = r.choice(b'0123456789abcdef{}",:[] xZ\\')
                c[i] = b.decode("utf-8", "replace")
            elif op == 4 and i > 0:
                try:
                    c[i] = edit(c[i], **r.choice([{"reason": "x"}, {"index": r.randrange(40)}, {"key_seq": r.randrange(1, 12)},
                                                 {"key_slot": r.randrange(5)}, {"key_chain": bytes(32)}, {"tenant": "bob"}]))
                except ppml.VerificationError:
                    pass
            elif op == 5:
                c = c[:r.randrange(1, len(c) + 1)]
        cases[f"m{k:03d}"] = join(c)
    res = compare(gointerop, tmp_path, cases, trail["pub"], keys=["alice/sales"])
    kinds = {p.kind for x in res.values() for p in x.problems}
    assert kinds >= {audit.MALFORMED_EXPORT, audit.MODIFIED_ENTRY, audit.DELETED_ENTRY, audit.REORDERED, audit.TRUNCATED,
                     audit.EXTRA_ENTRY, audit.INCONSISTENT_HEAD}, kinds


def test_fuzz_trail_parser(trail):
    """check_trail on random byte-level damage of a real export: always a Result, never another
    exception (the trail verifier parses untrusted bytes); see test_fuzz.py."""
    from test_fuzz import N, mutate
    r = random.Random(5)
    pub = trail["pub"]
    seeds = [trail["two"], trail["sales"]]
    for _ in range(N // 4):
        res = audit.check_trail(mutate(r, r.choice(seeds)), pub, [trail["h1"]], ["alice/sales"], "alice")
        assert isinstance(res, audit.Result) and (res.problems or res.trails)
