#!/usr/bin/env bash
# Pack files for the device tool, which carries at most 64 MiB per call: tar NAME's sources
# (dereferencing links) and split the tar into 56 MiB parts .gpu/parts/NAME.partNN
# (.gpu/ is git-excluded). Then one device call per part, back to back, each carrying that
# part and running `mkdir -p /tmp/parts && cp .gpu/parts/NAME.partNN /tmp/parts/`; on the
# machine `cat /tmp/parts/NAME.part* | tar -xf - -C DEST` restores them. Delete the parts
# afterwards (`rm -r .gpu/parts`): they may hold data that must not stay in the checkout.
#   bash benchmarks/pack_parts.sh NAME DIR_TO_TAR_FROM PATH [PATH ...]     (PATHs relative to DIR)
set -euo pipefail
name=$1 base=$2
shift 2
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/parts
rm -f .gpu/parts/"$name".part*
tar -chf - -C "$base" "$@" | split -b 56M -d -a 2 - .gpu/parts/"$name".part
ls -l .gpu/parts/"$name".part*
