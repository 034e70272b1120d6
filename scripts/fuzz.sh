#!/usr/bin/env bash
# Runs every fuzz target in the module (or those of the packages given) for
# FUZZTIME each and ends with a table of execs/s per target.
#
#   scripts/fuzz.sh                        # every package, FUZZTIME=60s
#   FUZZTIME=3m scripts/fuzz.sh ./attest/...
#
# Environment:
#   FUZZTIME      how long each target fuzzes (go test -fuzztime), default 60s
#   FUZZMINIMIZE  go test -fuzzminimizetime, default 100x (see below)
#   FUZZPARALLEL  go test -parallel (fuzzing workers), default: GOMAXPROCS
#   FUZZLOGS      directory for the per-target logs, default: a new temp dir
#
# Why FUZZMINIMIZE is bounded: Go minimizes every input that finds new
# coverage before fuzzing on, for up to 60s by default, and reports no
# executions meanwhile. Minimizing a []byte tries removing every byte range,
# a quadratic number of runs: ~700,000 for a 1,184-byte SEV-SNP report, far
# more for a quote or a Parquet file. Formats with a fixed minimum size cannot
# shrink at all, so those runs buy nothing, and the fuzzer spends most of its
# time at 0 execs/s. 100 runs per input keep the cheapest reductions (Go
# cuts the tail first) and bound the stall to 100 executions; a crasher is
# saved either way, and can be minimized further by running its target with
# a larger -fuzzminimizetime.
#
# The summary columns: start = seconds from launch (build included) until
# fuzzing began; execs/s = executions over the fuzzing time; idle = status
# lines (every 3s) that reported 0 execs/s; new = new interesting inputs.
# Exits non-zero if any target failed (a crasher is saved under
# testdata/fuzz/<Target>/ by go test). A bare "context deadline exceeded"
# at the end of -fuzztime with no input written is Go's own coordinator race
# (go.dev/issue/75804, fixed in Go 1.27; frequent on a loaded machine): it is
# reported as "ok (go#75804)", not as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZMINIMIZE=${FUZZMINIMIZE:-100x}
LOGS=${FUZZLOGS:-$(mktemp -d "${TMPDIR:-/tmp}/ppml-fuzz.XXXXXX")}
mkdir -p "$LOGS"
extra=()
[ -n "${FUZZPARALLEL:-}" ] && extra+=(-parallel "$FUZZPARALLEL")
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)

rows=()
failed=0
# Targets are found in the test sources rather than with go test -list,
# which builds every package's test binary, fuzz targets or not: with cgo
# engines (DuckDB, XGBoost, libtorch) that alone took most of a run.
for line in $($GO list -f '{{.ImportPath}}={{.Dir}}' "${pkgs[@]}"); do
	pkg=${line%%=*} dir=${line#*=}
	targets=$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*\*testing\.F) {$/\1/p' "$dir"/*_test.go 2>/dev/null | sort || true)
	for f in $targets; do
		log="$LOGS/$(echo "${pkg#github.com/ppml/ppml/}" | tr / _).$f.log"
		echo "== $pkg $f (log: $log)"
		: >"$log"
		t0=$EPOCHREALTIME
		start=""
		while IFS= read -r line; do
			printf '%s\n' "$line" >>"$log"
			case $line in
			*"now fuzzing"* | *"execs:"*)
				[ -z "$start" ] && start=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
				;;
			esac
			printf '   %s\n' "$line"
		done < <($GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" "${extra[@]}" "$pkg" 2>&1; echo "exit status $?")
		# Go prints "fuzz: elapsed: 9s, execs: 1234 (411/sec), new interesting: 3 (total: 12)"
		# every 3s after "gathering baseline coverage: N/N completed, now fuzzing with W workers".
		flake=0
		if grep -q '^exit status [1-9]' "$log" && grep -qx '    context deadline exceeded' "$log" &&
			! grep -q 'Failing input written to' "$log"; then
			flake=1
		fi
		row=$(awk -v pkg="${pkg#github.com/ppml/ppml/}" -v target="$f" -v start="${start:--}" -v flake=$flake '
			# Go rounds elapsed to seconds and prints it as a duration: 9s, 1m3s, 1h0m2s.
			function secs(s,   t, v) {
				sub(/,$/, "", s); t = 0
				while (match(s, /^[0-9.]+[hms]/)) {
					v = substr(s, 1, RLENGTH - 1) + 0
					u = substr(s, RLENGTH, 1)
					t += (u == "h") ? v * 3600 : (u == "m") ? v * 60 : v
					s = substr(s, RLENGTH + 1)
				}
				return t
			}
			/now fuzzing/ { base = secs($3) }
			/execs:/ && !/gathering/ {
				# A line counts as an interval once another follows it: the
				# last one only repeats the totals when fuzzing stops.
				if (seen) { n++; idle += pending }
				seen = 1
				el = secs($3); ex = $5
				rate = $6; gsub(/[(]|\/sec[)],?/, "", rate)
				pending = (rate + 0 == 0)
				for (i = 1; i <= NF; i++) if ($i == "interesting:") newi = $(i + 1)
			}
			/^exit status/ { status = ($3 == 0) ? "ok" : "FAIL" }
			/^--- FAIL/ { status = "FAIL" }
			END {
				if (flake) status = "ok (go#75804)"
				t = el - base; if (t <= 0) t = el
				r = (t > 0) ? ex / t : 0
				printf "%-26s %-26s %6s %12d %10.0f %5d/%-3d %5s  %s\n", pkg, target, start, ex, r, idle, n, (newi == "" ? 0 : newi), status
			}' "$log")
		rows+=("$row")
		case $row in *FAIL*) failed=1 ;; esac
	done
done

echo
echo "fuzzing summary (FUZZTIME=$FUZZTIME, -fuzzminimizetime $FUZZMINIMIZE; logs in $LOGS)"
printf '%-26s %-26s %6s %12s %10s %9s %5s  %s\n' package target start execs execs/s idle new result
for r in "${rows[@]}"; do printf '%s\n' "$r"; done
exit $failed
