#!/usr/bin/env bash
# roundtrip-1g.sh PPML [SIZE_MIB] — round-trip a 1 GiB (default) random file through the ppml
# binary: key generate, encrypt, inspect, decrypt, and compare SHA-256 digests. Needs about
# 3x SIZE of free space in ${TMPDIR:-/tmp}. Exits non-zero on any failure.
set -euo pipefail

ppml=${1:?usage: roundtrip-1g.sh PATH/TO/ppml [SIZE_MIB]}
case $ppml in /*) ;; *) ppml=$PWD/$ppml ;; esac
mib=${2:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/ppml-1g.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "creating a ${mib} MiB random file"
head -c "$((mib << 20))" /dev/urandom > big.bin
"$ppml" key generate -o k.key > /dev/null
t0=$(date +%s.%N)
"$ppml" encrypt --key k.key big.bin
t1=$(date +%s.%N)
"$ppml" inspect big.bin.ppml | grep -E '^(plaintext|segments|layout):'
"$ppml" decrypt --key k.key -o big.out big.bin.ppml
t2=$(date +%s.%N)
a=$(sha256sum < big.bin | cut -d' ' -f1)
b=$(sha256sum < big.out | cut -d' ' -f1)
echo "sha256 in:  $a"
echo "sha256 out: $b"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v m="$mib" \
  'BEGIN { printf "encrypt %.1f s (%.0f MiB/s incl. disk), decrypt %.1f s (%.0f MiB/s incl. disk)\n", b-a, m/(b-a), c-b, m/(c-b) }'
[ "$a" = "$b" ] || { echo "roundtrip-1g: digests differ" >&2; exit 1; }
echo "roundtrip-1g: ${mib} MiB round trip OK, identical sha256"
