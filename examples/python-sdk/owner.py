# %% [markdown]
# # The data owner's notebook: encrypt a dataset, set a policy, read the receipts
#
# Cells run in order in a notebook; as a script, `python3 owner.py prepare` runs cells 1-3
# (before the job) and `python3 owner.py review` cells 1, 4 and 5 (after it).
# Environment: PPML_SERVER, PPML_SERVER_FINGERPRINT and PPML_TOKEN (the owner's token).

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


def prepare(data_csv):
    # %% 2. Keys, and the dataset encrypted under the data key
    existing = {k.name for k in svc.list_keys()}
    for name in ("hospital/patients", "hospital/results"):
        if name not in existing:
            svc.create_key(name)
    patients = pd.read_csv(data_csv)
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
    if os.path.exists("head.json"):
        head = svc.audit_consistency(json.load(open("head.json")), AUDIT_KEY)
        print(f"the log extends the tree head kept last time ({head.size} entries now)")
    else:
        head = svc.audit_head(AUDIT_KEY)
    with open("head.json", "w") as f:
        json.dump(head.to_json(), f)


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"]:
        prepare(sys.argv[2])
    elif sys.argv[1:2] == ["review"]:
        review()
    else:
        sys.exit("usage: python3 owner.py prepare DATA.csv | review")
