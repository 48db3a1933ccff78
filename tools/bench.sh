#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmarks (not tests): builds if needed and runs each benchmark, printing its figures.
#   tools/bench.sh            full runs (medians of 3; several minutes)
#   tools/bench.sh --quick    one short rep of each, to see that they run
# VR_BENCH_DIR picks the disk the logstore benchmark measures (default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
[ -f build/build.ninja ] || meson setup build -Dtests=enabled >/dev/null
ninja -C build >/dev/null
quick=0
[ "${1:-}" = "--quick" ] && quick=1
echo "== logstore: durable append vs RocksDB one-key-per-record (a) and raw disk (b)"
if [ $quick = 1 ]; then
	build/tools/bench-logstore --dir "${VR_BENCH_DIR:-/var/tmp}" --quick
else
	build/tools/bench-logstore --dir "${VR_BENCH_DIR:-/var/tmp}" --reps 3
fi
echo
echo "== hsm_agent: operations through the agent vs direct PKCS#11; replicating a vault"
if [ $quick = 1 ]; then
	build/tools/bench-hsm --quick 2>/dev/null
else
	build/tools/bench-hsm --ops 300 --reps 5 --keys 10000 2>/dev/null
fi
echo
echo "== dataplane: two sites end to end over memif, at full and at half rate"
if [ $quick = 1 ]; then
	tools/bench-dataplane.sh 100000 10
else
	tools/bench-dataplane.sh 1000000 100
fi
echo
if [ $quick = 1 ]; then
	tools/bench-seal.sh 1 1 2>&1 | grep -v '^TELEMETRY'
else
	tools/bench-seal.sh 2 5 2>&1 | grep -v '^TELEMETRY'
fi
echo
if [ $quick = 1 ]; then
	tools/bench-streams.sh 10000 1 1 2>&1 | grep -v '^TELEMETRY'
else
	tools/bench-streams.sh 100000 2 5 2>&1 | grep -v '^TELEMETRY'
fi
