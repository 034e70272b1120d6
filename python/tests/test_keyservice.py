"""The key service client against a real `ppml server` on 127.0.0.1: TLS 1.3 with a pinned
certificate, tenants, tokens, keys, policies, data keys, kms:// envelopes read and written by
both Python and the Go CLI, and audit receipts and exports that verify in both."""
import datetime
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import ppml
from ppml import audit


def test_tenants_tokens_keys_policies(server, owner):
    admin, svc = owner["admin"], owner["svc"]
    assert {t.name for t in admin.list_tenants()} >= {"admin", "hospital", "runner"}
    t = admin.create_token("hospital", "to revoke")
    assert t.token.startswith("ppml_") and t.token not in repr(t)
    assert any(x.id == t.id and not x.token for x in admin.list_tokens())
    assert admin.revoke_token(t.id).revoked
    with pytest.raises(ppml.KeyServiceError) as ei:
        server.service(t.token).list_keys()
    assert ei.value.status == 401 and ei.value.code == "unauthorized"
    with pytest.raises(ppml.KeyServiceError) as ei:
        admin.create_tenant("hospital", "owner")
    assert (ei.value.status, ei.value.code) == (409, "conflict")
    with pytest.raises(ppml.KeyServiceError) as ei:
        svc.create_tenant("x", "owner")
    assert ei.value.status == 403 and "role admin" in ei.value.message

    k = svc.create_key("hospital/keys-test")
    assert (k.name, k.version, k.policy) == ("hospital/keys-test", 1, False)
    assert svc.rotate_key(k.name).version == 2
    assert k.name in {x.name for x in svc.list_keys()}
    digest = "sha256:" + "ab" * 32
    p = svc.set_policy(k.name, {"version": 1, "jobs": [digest], "platforms": {"sim": {"measurements": ["00" * 48]}}})
    assert svc.get_policy(k.name) == p
    svc.set_policy(k.name, f"version: 1\njobs: [{digest}]\nplatforms:\n  sim:\n    measurements: ['{'11' * 48}']\n")
    assert svc.get_policy(k.name)["platforms"]["sim"]["measurements"] == ["11" * 48]
    with pytest.raises(ppml.KeyServiceError) as ei:
        svc.set_policy(k.name, "version: 1\nbogus: true\n")
    assert ei.value.status == 400
    with pytest.raises(ppml.KeyServiceError) as ei:
        svc.get_policy("no.such.key")
    assert (ei.value.status, ei.value.code) == (404, "not_found")

    d = svc.generate_data_key(k.name, b"aad")
    assert len(d.data_key) == 32 and d.version == 2 and d.data_key.hex() not in repr(d)
    assert svc.decrypt_data_key(k.name, d.wrapped, b"aad") == d.data_key
    with pytest.raises(ppml.KeyServiceError):
        svc.decrypt_data_key(k.name, d.wrapped, b"other aad")


def test_tls(server, owner, tmp_path):
    # A CA file instead of the pin: the server's self-signed certificate names 127.0.0.1.
    ca = os.path.join(server.data, "tls.crt")
    svc = ppml.KeyService(server.url, token=owner["token"], ca_file=ca)
    assert svc.list_keys() is not None
    # No pin and no CA: the system roots do not know this certificate.
    with pytest.raises(ppml.KeyServiceError) as ei:
        ppml.KeyService(server.url, token=owner["token"]).list_keys()
    assert ei.value.code == "tls"
    wrong = "00" * 32
    with pytest.raises(ppml.KeyServiceError) as ei:
        ppml.KeyService(server.url, token=owner["token"], fingerprint=wrong).list_keys()
    assert ei.value.code == "tls" and "ingerprint" in ei.value.message
    with pytest.raises(ValueError):
        ppml.KeyService(server.url, fingerprint="abc")
    with pytest.raises(ValueError):
        ppml.KeyService("http://127.0.0.1:1")
    # A server that speaks TLS 1.2 at most is refused, even with its certificate pinned.
    fp, port, stop = _tls12_server(tmp_path)
    try:
        with pytest.raises(ppml.KeyServiceError) as ei:
            ppml.KeyService(f"https://127.0.0.1:{port}", fingerprint=fp).status()
        assert ei.value.code == "tls"
    finally:
        stop()


def _tls12_server(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ls = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve():
        ls.settimeout(0.2)
        while not done.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            try:
                with ctx.wrap_socket(c, server_side=True) as s:
                    s.recv(1)
            except (OSError, ssl.SSLError):
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    def stop():
        done.set()
        t.join()
        ls.close()
    return cert.fingerprint(hashes.SHA256()).hex(), ls.getsockname()[1], stop


def test_kms_envelopes_both_ways(server, owner, ppml_bin, tmp_path, monkeypatch):
    svc = owner["svc"]
    svc.create_key("hospital/records")
    ref = f"kms://127.0.0.1:{server.port}/hospital/records"
    env = server.env(owner["token"])
    plain = b"id,diagnosis\n" + b"".join(b"%d,flu\n" % i for i in range(200000))
    # Python writes with a KMSKey bound to a service object; Go decrypts with --key kms://...
    with ppml.create(tmp_path / "py.csv.ppml", key=svc.key(ref), content_type="csv", size=len(plain)) as w:
        w.write(plain)
    assert str(ppml.inspect(tmp_path / "py.csv.ppml").key_ref) == ref + "@1"
    r = subprocess.run([ppml_bin, "decrypt", "--key", ref, "-o", "-", tmp_path / "py.csv.ppml"], env=env,
                       capture_output=True, check=True)
    assert r.stdout == plain
    # Go writes; Python reads with a "kms://..." string configured from PPML_* like the CLI.
    (tmp_path / "go.csv").write_bytes(plain)
    subprocess.run([ppml_bin, "encrypt", "--key", ref, "-o", tmp_path / "go.csv.ppml", tmp_path / "go.csv"], env=env,
                   check=True, capture_output=True)
    for k, v in env.items():
        if k.startswith("PPML_"):
            monkeypatch.setenv(k, v)
    with ppml.open(tmp_path / "go.csv.ppml", keys=ref) as f:
        assert f.read() == plain
    assert ppml.read_csv(tmp_path / "go.csv.ppml", keys=ref).shape == (200000, 2)
    # The key of another service (other port) or name is refused before any request.
    for other in (f"kms://127.0.0.1:{server.port + 1}/hospital/records", f"kms://127.0.0.1:{server.port}/hospital/other"):
        with pytest.raises(ppml.WrongKeyError):
            ppml.open(tmp_path / "go.csv.ppml", keys=svc.key(other))
    # The runner's token cannot unwrap the owner's data key.
    with pytest.raises(ppml.KeyServiceError) as ei:
        ppml.open(tmp_path / "go.csv.ppml", keys=server.service(owner["runner_token"]).key(ref))
    assert ei.value.status == 403
    types = [e.type for e in svc.audit_list(key="hospital/records")]
    assert types == ["key_create", "data_key", "decrypt", "data_key", "decrypt", "decrypt"]


def test_receipts_and_exports_verify_in_both(server, owner, ppml_bin, tmp_path):
    svc, admin = owner["svc"], owner["admin"]
    svc.create_key("hospital/audited")
    for _ in range(3):
        svc.generate_data_key("hospital/audited", b"x")
    pub = admin.audit_public_key()
    (tmp_path / "audit.pub").write_bytes(pub)
    head = svc.audit_head(pub)
    env = server.env(owner["token"])
    entries = svc.audit_list(key="hospital/audited")
    assert [e.type for e in entries] == ["key_create", "data_key", "data_key", "data_key"]
    for e in entries:
        got, h = svc.audit_receipt(e.index, pub)
        assert got == e and h.size >= e.index + 1
        r = subprocess.run([ppml_bin, "audit", "prove", str(e.index), "--public-key", tmp_path / "audit.pub", "--json"],
                           env=env, capture_output=True, text=True, check=True)
        assert json.loads(r.stdout)["verified"] is True
    # A receipt kept as the server sent it verifies offline, later; a doctored one does not.
    kept = svc.audit_proof(entries[-1].index)
    assert audit.verify_receipt_document(kept, pub)[0] == entries[-1]
    doc = json.loads(kept)
    doc["entry"]["key_version"] = 7
    with pytest.raises(ppml.VerificationError, match="not in the tree"):
        audit.verify_receipt_document(json.dumps(doc), pub)
    with pytest.raises(ppml.KeyServiceError) as ei:  # an entry about another tenant
        svc.audit_receipt(0, pub)
    assert ei.value.status == 403
    # The log only grew since the head the owner kept.
    svc.generate_data_key("hospital/audited", b"y")
    newer = svc.audit_consistency(head, pub)
    assert newer.size > head.size
    forged = audit.TreeHead(head.log_id, head.size, bytes(32), head.timestamp, head.key_id, head.algorithm, head.signature)
    with pytest.raises(ppml.VerificationError):
        svc.audit_consistency(forged, pub)
    # The admin's export verifies in Python and in Go; a tampered copy fails alike in both.
    data = admin.audit_export()
    res = audit.verify_export(data, pub, trusted=[head])
    assert res.entries == res.tree_head.size >= head.size
    (tmp_path / "audit.jsonl").write_bytes(data)
    r = subprocess.run([ppml_bin, "audit", "verify", "--file", tmp_path / "audit.jsonl", "--public-key",
                        tmp_path / "audit.pub", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["ok"] is True
    lines = data.split(b"\n")
    lines[3] = lines[3].replace(b'"type":"', b'"type":"x', 1)
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines))
    r = subprocess.run([ppml_bin, "audit", "verify", "--file", tmp_path / "bad.jsonl", "--public-key",
                        tmp_path / "audit.pub", "--json"], capture_output=True, text=True)
    assert r.returncode == 1
    go = [(p["kind"], p["index"], p.get("line", 0)) for p in json.loads(r.stdout)["problems"]]
    py = [(p.kind, p.index, p.line) for p in audit.check_export(b"\n".join(lines), pub).problems]
    assert py == go and go[0] == ("modified_entry", 2, 4)
    # The live check: export from the server and verify in one call.
    assert admin.audit_verify(pub).ok
