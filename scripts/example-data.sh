#!/bin/sh
# Fetch the public data behind the SQL and stream examples again and check it against
# the copies in examples/sql. Separate from scripts/datasets.sh (ML data).
#
#   scripts/example-data.sh            # fetch into the cache and compare
#
# Cache: $PPML_DATASETS, else $HOME/.cache/ppml/datasets.
set -eu

cache=${PPML_DATASETS:-$HOME/.cache/ppml/datasets}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$cache"

vega_version=3.2.1
vega_tgz_sha=6f72fda460a9863fae5fcb32f85bcd49e1761fdea6dc6cf9f4962472881cc5a3
weather_sha=3433511ab963755ec1a573420af962e713e66691c07c068f5a247e6891912311

fetch_seattle_weather() {
	tgz="$cache/vega-datasets-$vega_version.tgz"
	if [ ! -f "$tgz" ]; then
		(cd "$cache" && npm pack --silent "vega-datasets@$vega_version" >/dev/null)
	fi
	echo "$vega_tgz_sha  $tgz" | sha256sum -c --quiet -
	out="$cache/seattle-weather-hourly-normals.csv"
	tar -xzOf "$tgz" package/data/seattle-weather-hourly-normals.csv >"$out"
	echo "$weather_sha  $out" | sha256sum -c --quiet -
	cmp "$out" "$repo/examples/sql/orca-data/seattle-weather-hourly-normals.csv"
	echo "seattle-weather-hourly-normals.csv: matches examples/sql/orca-data"
}

# The earthquake feed of the stream example: the GeoJSON of vega-datasets cut
# to one event per line, in event-time order (see examples/stream/earthquakes).
quakes_sha=a42702a83ffbae679f95d1fa53e2cae0bae13b21e599a68cdd50a44fc52129f7
fetch_earthquakes() {
	tgz="$cache/vega-datasets-$vega_version.tgz"
	echo "$vega_tgz_sha  $tgz" | sha256sum -c --quiet -
	raw="$cache/earthquakes.json"
	tar -xzOf "$tgz" package/data/earthquakes.json >"$raw"
	echo "$quakes_sha  $raw" | sha256sum -c --quiet -
	python3 - "$raw" "$cache/earthquakes.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as o:
    for f in sorted(d["features"], key=lambda f: (f["properties"]["time"], f["id"])):
        r = {"id": f["id"]}
        for k in ["time", "updated", "mag", "magType", "place", "net", "type", "status"]:
            r[k] = f["properties"][k]
        o.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
PY
	cmp "$cache/earthquakes.jsonl" "$repo/examples/stream/earthquakes/earthquakes.jsonl"
	echo "earthquakes.jsonl: matches examples/stream/earthquakes"
}

check_cc0() {
	src=/usr/share/common-licenses/CC0-1.0 # Debian base-files
	if [ -f "$src" ]; then
		cmp "$src" "$repo/examples/sql/wordcount/cc0-1.0.txt"
		cmp "$src" "$repo/examples/stream/wordcount/cc0-1.0.txt"
		echo "cc0-1.0.txt: matches $src"
	fi
}

fetch_seattle_weather
fetch_earthquakes
check_cc0
