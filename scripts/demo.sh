#!/usr/bin/env bash
# demo.sh PPML — the protected-file envelope at work: generate a key, encrypt the bundled
# sample (examples/data/patients.csv, synthetic clinic visits), inspect, decrypt, compare.
# Everything happens in a temporary directory that is removed at the end. Exits non-zero on
# any failure.
set -euo pipefail

ppml=${1:?usage: demo.sh PATH/TO/ppml}
case $ppml in /*) ;; *) ppml=$PWD/$ppml ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
sample=$repo/examples/data/patients.csv
[ -x "$ppml" ] || { echo "demo: $ppml is not an executable" >&2; exit 1; }
[ -r "$sample" ] || { echo "demo: sample $sample is missing" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ppml-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$sample" patients.csv
step() { printf '\n== %s\n' "$*"; }

step "1. The data owner creates a key-encryption key in owner.key (mode 0600); its key id goes into every file it protects."
"$ppml" key generate -o owner.key
ls -l owner.key | awk '{print "   ", $1, $NF}'

step "2. The owner encrypts patients.csv ($(wc -c < patients.csv) bytes) into the ppml envelope: AES-256-GCM in authenticated 1 MiB segments."
"$ppml" encrypt --key owner.key patients.csv
if grep -q "Ines Moreau" patients.csv.ppml; then echo "demo: plaintext visible in the envelope" >&2; exit 1; fi
echo "    patients.csv.ppml contains no readable patient data."

step "3. Anyone can inspect the header without the key: it names the key, the type and sizes, never key material."
"$ppml" inspect patients.csv.ppml

step "4. The owner decrypts it to patients.decrypted.csv; every segment is authenticated before it is written."
"$ppml" decrypt --key owner.key -o patients.decrypted.csv patients.csv.ppml

step "5. The decrypted file is byte-for-byte the original."
cmp patients.csv patients.decrypted.csv
sha256sum patients.csv patients.decrypted.csv | sed 's/^/    /'

step "6. A tampered copy (one flipped bit) and a different key are both refused with exit status 1 and no output."
cp patients.csv.ppml tampered.ppml
printf '\x01' | dd of=tampered.ppml bs=1 seek=$(( $(wc -c < tampered.ppml) - 20 )) conv=notrunc status=none
if "$ppml" decrypt --key owner.key -o tampered.csv tampered.ppml 2> err.txt; then echo "demo: tampered file decrypted" >&2; exit 1; fi
sed 's/^/    /' err.txt
"$ppml" key generate -o other.key > /dev/null
if "$ppml" decrypt --key other.key -o other.csv patients.csv.ppml 2> err.txt; then echo "demo: wrong key accepted" >&2; exit 1; fi
sed 's/^/    /' err.txt
[ ! -e tampered.csv ] && [ ! -e other.csv ] || { echo "demo: a refused decrypt left output" >&2; exit 1; }

printf '\ndemo: the envelope round trip works; all steps passed.\n'
