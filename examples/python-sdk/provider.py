"""The data provider's side: a clinic sends its visit records to the hospital, encrypted to the
hospital's public key. The clinic holds no key that opens the file afterwards: only the
hospital's private key does (docs/python.md, "Public-key recipients").

    python3 provider.py VISITS.csv OWNER.pub   # writes visits.csv.ppml in the working directory

OWNER.pub is what `ppml key generate --recipient` wrote next to the owner's private key. Its
default kind, mlkem768x25519 (ML-KEM-768 + X25519, safe against a future quantum computer), is
encrypted by the ppml command on the SDK's behalf (python3-cryptography has no ML-KEM): the
plaintext goes to it through a pipe, never to a file.
"""
import sys

import pandas as pd

import ppml

visits_csv, owner_pub = sys.argv[1], sys.argv[2]
visits = pd.read_csv(visits_csv)
owner = ppml.Recipient.load(owner_pub)
with ppml.create("visits.csv.ppml", recipient=owner, content_type="csv", overwrite=True) as w:
    w.write(visits.to_csv(index=False).encode())
print(f"encrypted {len(visits)} visits to visits.csv.ppml for {owner.ref.describe()}")

# Whatever keys the clinic has, none opens it: the file needs the owner's private key.
try:
    ppml.open("visits.csv.ppml", keys=ppml.LocalKey.generate("clinic.key", overwrite=True))
except ppml.WrongKeyError as e:
    print(f"the clinic cannot read it back: {e.kind} (the file needs the owner's {e.need.kem} private key)")
