#!/usr/bin/env bash
# Checks that the runtimes build reproducibly: the source tree is copied
# into two directories at different paths (as two clones would be), each
# copy runs `make runtime runtime-dl` with the flags of `make build`, and
# the two copies' bin/ppml-run (and bin/ppml-run-dl) must be identical byte
# for byte. Prints the SHA-256 digests.
#
#   scripts/reproducible-check.sh           ppml-run and ppml-run-dl with
#                                           every engine; each build with an
#                                           empty Go build cache of its own
#                                           (tens of minutes: cgo engines)
#   scripts/reproducible-check.sh --quick   an exec-only runtime, sharing the
#                                           build cache (seconds; what the
#                                           test suite runs)
#
# VERSION and COMMIT (stamped into the binary) default to this checkout's;
# both copies get the same. docs/reproducible-builds.md explains the flags.
set -euo pipefail

quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

src=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${VERSION:-$(git -C "$src" describe --tags --always --dirty 2>/dev/null || echo devel)}
COMMIT=${COMMIT:-$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)}
work=$(mktemp -d "${TMPDIR:-/tmp}/ppml-repro.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# The tracked files as they are in the working tree (a plain copy when this
# is not a git checkout), without build outputs.
copy() {
  mkdir -p "$1"
  if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$1")
  else
    (cd "$src" && tar --exclude=./bin --exclude=./.git -cf - .) | tar -C "$1" -xf -
  fi
}

tags=""
targets="runtime runtime-dl"
bins="ppml-run ppml-run-dl"
if [ "$quick" = 1 ]; then
  tags="ppml_no_sql,ppml_no_ml,ppml_no_serve,ppml_no_stream,ppml_no_dl"
  targets="runtime"
  bins="ppml-run"
fi
i=0
for dir in "$work/a/ppml" "$work/bb/a/much/longer/path/ppml"; do
  i=$((i + 1))
  copy "$dir"
  env=()
  if [ "$quick" = 0 ]; then
    mkdir -p "$work/cache$i"
    env=(GOCACHE="$work/cache$i")
  fi
  echo "building $bins in $dir${tags:+ (tags $tags)}" >&2
  # shellcheck disable=SC2086 # targets is a list
  env "${env[@]}" make -s -C "$dir" $targets RUNTIME_TAGS="$tags" VERSION="$VERSION" COMMIT="$COMMIT" >&2
done

for bin in $bins; do
  a="$work/a/ppml/bin/$bin"
  b="$work/bb/a/much/longer/path/ppml/bin/$bin"
  sha256sum "$a" "$b" | sed "s|$work/||"
  if ! cmp -s "$a" "$b"; then
    echo "NOT reproducible: the two builds of bin/$bin differ" >&2
    cmp "$a" "$b" | head -1 >&2 || true
    exit 1
  fi
  for d in "$work/a/ppml" "$work/bb/a/much/longer/path/ppml"; do
    if grep -qaF "$d" "$a"; then
      echo "NOT reproducible: bin/$bin contains its build directory $d" >&2
      exit 1
    fi
  done
  echo "reproducible: both builds of bin/$bin are identical ($(sha256sum < "$a" | cut -c1-64))"
done
