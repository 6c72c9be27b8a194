#!/usr/bin/env bash
# Runs the property tests over the bundle parsers, tar safety and the registry-pack
# check (stub/src/format/fuzz.rs) for many more cases than the suite does.
#
#   bash hack/fuzz.sh [CASES]        # default 20000 cases per property
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-20000}
echo "fuzz: $cases cases per property"
PROPTEST_CASES=$cases cargo test --release -q -p airbin-stub --lib format::fuzz -- --test-threads=2
