#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmarks (not tests): builds if needed and runs each benchmark, printing its figures.
#   tools/bench.sh            full runs (medians of 3; several minutes)
#   tools/bench.sh --quick    one short rep of each, to see that they run
# Extra arguments go to every benchmark (see bench-logstore --help). VR_BENCH_DIR picks the
# disk to measure (default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
[ -f build/build.ninja ] || meson setup build -Dtests=enabled >/dev/null
ninja -C build >/dev/null
echo "== logstore: durable append vs RocksDB one-key-per-record (a) and raw disk (b)"
build/tools/bench-logstore --dir "${VR_BENCH_DIR:-/var/tmp}" "$@"
