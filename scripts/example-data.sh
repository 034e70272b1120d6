#!/bin/sh
# Fetch the public data behind the SQL examples again and check it against
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

check_cc0() {
	src=/usr/share/common-licenses/CC0-1.0 # Debian base-files
	if [ -f "$src" ]; then
		cmp "$src" "$repo/examples/sql/wordcount/cc0-1.0.txt"
		echo "cc0-1.0.txt: matches $src"
	fi
}

fetch_seattle_weather
check_cc0
