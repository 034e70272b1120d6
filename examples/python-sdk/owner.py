# %% [markdown]
# # The data owner's notebook: encrypt a dataset, set a policy, read the receipts
#
# Cells run in order in a notebook; as a script, `python3 owner.py prepare VISITS.csv.ppml` runs
# cells 1-3 (before the job) and `python3 owner.py review` cells 1, 4, 5 and 6 (after it).
# Environment: PPML_SERVER, PPML_SERVER_FINGERPRINT and PPML_TOKEN (the owner's token); in the
# working directory owner.key, the owner's private key (`ppml key generate --recipient`), whose
# public half (owner.pub) the clinic encrypted its visits to (provider.py).

# %% 1. Connect to the key service and pin its tree-head key
import hashlib
import json
import os
import shutil
import sys

import pandas as pd

import ppml

svc = ppml.KeyService.from_env()
host = svc.server.removeprefix("https://")
PATIENTS, RESULTS = f"kms://{host}/hospital/patients", f"kms://{host}/hospital/results"
# The key that signs the audit log's tree heads. Fetched once here and kept; compare it out of
# band (e.g. with the operator) before relying on it: a key fetched from the server being checked
# proves nothing about that server.
if not os.path.exists("audit.pub"):
    with open("audit.pub", "wb") as f:
        f.write(svc.audit_public_key())
AUDIT_KEY = open("audit.pub", "rb").read()


def prepare(received):
    # %% 2. The clinic's file, opened with the owner's private key; re-encrypted under a key at
    # the key service, whose policy decides which job may ever read it
    existing = {k.name for k in svc.list_keys()}
    for name in ("hospital/patients", "hospital/results"):
        if name not in existing:
            svc.create_key(name)
    patients = ppml.read_csv(received, keys="owner.key")
    print(f"opened {received} from the clinic with owner.key ({ppml.inspect(received).key_ref.describe()})")
    ppml.to_csv(patients, "patients.csv.ppml", key=svc.key(PATIENTS), index=False, overwrite=True)
    print(f"encrypted {len(patients)} visits to patients.csv.ppml under {ppml.inspect('patients.csv.ppml').key_ref}")

    # %% 3. Approve the data scientist's job: its digest, on the runtime this machine simulates
    digest = ppml.job.digest("job.yaml")
    runtime = shutil.which("ppml-run") or shutil.which("ppml")
    with open(os.path.realpath(runtime), "rb") as f:
        measurement = hashlib.sha384(f.read()).hexdigest()  # what the simulated TEE measures
    policy = {"version": 1, "jobs": [digest], "platforms": {"sim": {"measurements": [measurement]}}}
    for name in ("hospital/patients", "hospital/results"):  # read the data, write the results
        svc.set_policy(name, policy)
    print(f"policy set: job {digest} on the simulated TEE running {os.path.basename(runtime)} ({measurement[:16]}…)")


def review():
    # %% 4. The result, decrypted through the key service (audited as decrypt)
    summary = ppml.read_csv("out/summary.csv.ppml", keys=svc.key(RESULTS))
    print(summary.to_string(index=False))

    # %% 5. Receipts: every use of the keys, each proven to be in the signed log
    for name in ("hospital/patients", "hospital/results"):
        for e in svc.audit_list(key=name):
            entry, head = svc.audit_receipt(e.index, AUDIT_KEY)  # signature + inclusion proof
            who = f"job {entry.job_digest.hex()[:12]}… on {entry.platform}" if entry.job_digest else entry.actor
            key = f"{name}@{entry.key_version}" if entry.key_version else name
            print(f"  {entry.index:3d} {entry.type:<11} {key:<20} {who}"
                  f"{' INSECURE' if entry.insecure else ''}  ✓ in tree of {head.size}")
    # Keep the newest tree head; next time, check the log only grew since.
    kept = [ppml.audit.TreeHead.from_json(open("head.json", "rb").read())] if os.path.exists("head.json") else []
    if kept:
        head = svc.audit_consistency(kept[0], AUDIT_KEY)
        print(f"the log extends the tree head kept last time ({head.size} entries now)")
    else:
        head = svc.audit_head(AUDIT_KEY)
    with open("head.json", "w") as f:
        json.dump(head.to_json(), f)

    # %% 6. The trail export: every entry about the two keys and about the tenant itself, with
    # the signed tree head's commitment to each trail's newest entry, so that nothing can have
    # been left out (and, with a head kept earlier, the proof that the log extends it). Kept as
    # a file, it verifies offline any time: here, and with `ppml audit verify --file`.
    keys = ["hospital/patients", "hospital/results"]
    trail = svc.audit_trail(keys=keys, trusted=kept)
    with open("hospital.trail", "wb") as f:
        f.write(trail)
    res = ppml.audit.verify_trail(trail, AUDIT_KEY, trusted=kept, keys=keys, tenant="hospital")
    print(f"trail export verified: complete up to the tree head of {res.tree_head.size} entries")
    for t in res.trails:
        print(f"  {t.name():<42} {t.count:2d} entries, the newest entry {t.last}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"]:
        prepare(sys.argv[2])
    elif sys.argv[1:2] == ["review"]:
        review()
    else:
        sys.exit("usage: python3 owner.py prepare VISITS.csv.ppml | review")
