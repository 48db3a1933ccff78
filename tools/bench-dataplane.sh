#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Two sites end to end (a benchmark, not a test): vaultrep-gen -> site 1 (LAN memif) -> WAN memif
# -> site 2, durable logs on both ends, S streams of 64-byte frames. Prints records/s and ack
# latency percentiles at the highest rate the generator reaches (window-limited), then at 50 %
# of that rate. Every process shares this machine's cores, so the figures are the pipeline's on
# two cores, not a single lcore's. It then prints, from the same run, the CPU each process spent
# per record at full rate (the sites' over the run, the generator's from its start to its exit)
# with the bound that sets on two cores, and the logstore's own durable rate on the same disk,
# alone, with the end-to-end ratio to it (one WAL; then as many WALs as the sites carry); last,
# the logstore's own ack latency floor on this disk (bench-logstore --latency) against the 50 %
# run's p99.
#   tools/bench-dataplane.sh [RECORDS] [STREAMS]      (defaults 1000000 and 100)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
streams=${2:-100}
bin=build/dataplane
dir=$(mktemp -d /var/tmp/vaultrep-bench-dp.XXXXXX)
pids=()
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
}
cleanup() {
	stop
	rm -rf "$dir"
}
trap cleanup EXIT

site() { # id peer lan-role wan-role
	local id=$1 peer=$2
	mkdir -p "$dir/s$id"
	cat >"$dir/s$id/dp.ini" <<INI
[site]
id = $id
log_dir = $dir/s$id/wal
control = $dir/s$id/ctl.sock
[lan]
port = 0
ip = 198.18.$id.1
[wan]
port = 1
ip = 198.19.0.$id
[peer $peer]
ip = 198.19.0.$peer
INI
	"$bin/vaultrep-dataplane" -l 0,1 --no-huge -m 256 --no-pci --file-prefix "vrbench$id" \
		--log-level lib.eal:warning \
		--vdev "net_memif0,role=server,socket=$dir/s$id/lan.sock,socket-abstract=no" \
		--vdev "net_memif1,role=$3,socket=$dir/wan.sock,socket-abstract=no" \
		-- --config "$dir/s$id/dp.ini" >"$dir/s$id/log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do [ -S "$dir/s$id/ctl.sock" ] && return; sleep 0.1; done
	echo "bench-dataplane: site $id did not start:" >&2
	cat "$dir/s$id/log" >&2
	exit 1
}

run() { # label rate first-account; the generator's user and system CPU go to $dir/gentime
	local out
	out=$(
		TIMEFORMAT='%U %S'
		{ time "$bin/vaultrep-gen" -l 1 --no-huge -m 128 --no-pci --file-prefix vrbenchg \
			--log-level lib.eal:warning \
			--vdev "net_memif0,role=client,socket=$dir/s1/lan.sock,socket-abstract=no" -- \
			--ip 198.18.1.9 --dst 198.18.1.1 --streams "$streams" --records "$records" \
			--window 32 --rate "$2" --account "$3" --seconds 300 2>&1 |
			grep '^vaultrep-gen'; } 2>"$dir/gentime"
	)
	echo "$out" | sed "s|^vaultrep-gen:|  $1:|"
}
ticks() { # pid: user + system CPU of the process so far, in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

site 1 2 server
site 2 1 client
key=$(head -c 32 /dev/urandom | base64)
for base in 1 100001; do
	for a in $(seq "$base" $((base + streams - 1))); do
		echo "{\"op\": \"stream.add\", \"account\": $a, \"vault\": 1, \"members\": [2]}"
		echo "{\"op\": \"key.set\", \"account\": $a, \"vault\": 1, \"key_id\": 1, \"key\": \"$key\"}"
	done
done | tools/dpctl "$dir/s1/ctl.sock" - >/dev/null
for base in 1 100001; do
	for a in $(seq "$base" $((base + streams - 1))); do
		echo "{\"op\": \"stream.add\", \"account\": $a, \"vault\": 1, \"primary\": 1}"
		echo "{\"op\": \"key.set\", \"account\": $a, \"vault\": 1, \"primary\": 1, \"key_id\": 1, \"key\": \"$key\"}"
	done
done | tools/dpctl "$dir/s2/ctl.sock" - >/dev/null
echo "== dataplane: two sites over memif, $records records of 64 B over $streams streams"
c1=$(ticks "${pids[0]}") c2=$(ticks "${pids[1]}")
full=$(run "100 % (as fast as acks allow)" 0 1)
c1=$(($(ticks "${pids[0]}") - c1)) c2=$(($(ticks "${pids[1]}") - c2))
gcpu=$(awk '{ print $1 + $2 }' "$dir/gentime")
echo "$full"
rate=$(echo "$full" | sed -n 's|.* \([0-9]*\) records/s.*|\1|p' | head -1)
# Where the latency goes: each busy thread's share of a core running and waiting for one
# (/proc/<tid>/schedstat), over 5 s of the 50 % run.
sched() { # seconds
	local t p a b c pref
	declare -A r0 w0
	for p in "${pids[@]}" $(pgrep -f "file-prefix vrbenchg" || true); do
		for t in /proc/$p/task/*; do read -r a b c <"$t/schedstat" && r0[$t]=$a w0[$t]=$b; done
	done
	sleep "$1"
	for t in "${!r0[@]}"; do
		read -r a b c <"$t/schedstat" 2>/dev/null || continue
		pref=$(tr '\0' ' ' <"${t%/task/*}/cmdline" | grep -o 'file-prefix [a-z0-9]*' | cut -d' ' -f2)
		a=$(((a - r0[$t]) / 10000000 / $1)) b=$(((b - w0[$t]) / 10000000 / $1))
		[ $((a + b)) -gt 1 ] && printf '    %-9s %-16s running %3d %%  waiting for a core %3d %%\n' \
			"$pref" "$(cat "$t/comm")" "$a" "$b"
	done | sort || true
}
(sleep 3 && sched 5 >"$dir/sched") &
sampler=$!
for i in 1 2; do tools/dpctl "$dir/s$i/ctl.sock" stats >"$dir/stats$i.0"; done
half=$(run "50 % ($((rate / 2)) records/s)" $((rate / 2)) 100001)
for i in 1 2; do tools/dpctl "$dir/s$i/ctl.sock" stats >"$dir/stats$i.1"; done
echo "$half"
half_p99=$(echo "$half" | sed -n 's|.* p99 \([0-9]*\) .*|\1|p' | head -1)
wait "$sampler" || true
echo "  threads during the 50 % run (share of one core; two cores in all):"
cat "$dir/sched"
# Each site's own view of the 50 % run: its group commits' times (the log's append call) and
# its acks' (batch opened to producer acked), from the log2 histograms of `stats`; a bucket
# is given by its upper bound, so "<= 4 ms" means between 2 and 4 ms.
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
def pct(h, q):
    n, acc = sum(h), 0
    for b, c in enumerate(h):
        acc += c
        if n and acc >= q * n:
            return "<= %g ms" % (2 ** b / 1000)
    return "-"
for i in (1, 2):
    a, b = (json.load(open("%s/stats%d.%d" % (d, i, k))) for k in (0, 1))
    for key, what in (("commit_log2_us", "group commits"), ("ack_latency_log2_us", "acks")):
        h = [y - x for x, y in zip(a[key], b[key])]
        if not sum(h):
            continue  # site 2 acks no producer of its own here
        print("  site %d, 50 %% run, its %s: %d, p50 %s, p99 %s, p99.9 %s" %
              (i, what, sum(h), pct(h, .5), pct(h, .99), pct(h, .999)))
    print("  site %d, longest group commit since start: %.1f ms" % (i, b["commit_max_us"] / 1000))
PY
hz=$(getconf CLK_TCK)
awk -v r="$records" -v a="$c1" -v b="$c2" -v g="$gcpu" -v hz="$hz" 'BEGIN {
	a = a / hz * 1e6 / r; b = b / hz * 1e6 / r; g = g * 1e6 / r
	printf "  CPU per record at full rate: site 1 %.2f us, site 2 %.2f us, generator %.2f us;", a, b, g
	printf " %.2f us in all, so two cores allow at most %d records/s\n", a + b + g, 2e6 / (a + b + g)
}'
# The logstore alone on the same disk, the sites stopped: its durable rate for 64-byte records.
stop
if [ -x build/tools/bench-logstore ]; then
	build/tools/bench-logstore --dir "$dir" --sizes 64 --groups 256,4096 --reps 3 \
		--mib-per-thread 32 --no-baseline >"$dir/logstore" 2>&1 ||
		{ echo "bench-dataplane: bench-logstore failed:" >&2 && cat "$dir/logstore" >&2 && exit 1; }
	awk -v e="$rate" '$1 == 64 && ($2 == 256 || $2 == 4096) {
		printf "  logstore alone, 64 B records, %4d a call: %8d records/s durable (%.2f cores);", $2, $3, $5
		printf " end to end / logstore %.2fx (target 0.8x)\n", e / $3
	}' "$dir/logstore"
	# The same over as many WALs as the sites carry, taken in turn: the log writer's shape, a
	# chunk (an index entry, a stream row) for every few records.
	build/tools/bench-logstore --dir "$dir" --sizes 64 --groups 256,1024 --reps 3 --threads 1 \
		--streams "$streams" --mib-per-thread 32 --no-baseline >"$dir/logstore-streams" 2>&1 ||
		{ echo "bench-dataplane: bench-logstore --streams failed:" >&2 && cat "$dir/logstore-streams" >&2 && exit 1; }
	awk -v e="$rate" -v s="$streams" '$1 == 64 && ($2 == 256 || $2 == 1024) {
		printf "  logstore alone, 64 B records over %d WALs, one writer, %4d a call: %8d records/s durable (%.2f cores);", s, $2, $3, $5
		printf " end to end / logstore %.2fx\n", e / $3
	}' "$dir/logstore-streams"
	# Its ack latency floor: two logs (as the two sites), each appending 256 records a call
	# back to back, nothing else running; a record arriving at a random moment waits for the
	# end of the first append that starts after it. No durable ack on this disk can beat it.
	build/tools/bench-logstore --dir "$dir" --sizes 64 --groups 256 --threads 2 --latency 10 \
		>"$dir/floor" 2>&1 ||
		{ echo "bench-dataplane: bench-logstore --latency failed:" >&2 && cat "$dir/floor" >&2 && exit 1; }
	awk -v p99="$half_p99" '$1 ~ /^[0-9]+$/ && NF == 15 {
		printf "  logstore alone, ack latency floor (log %d of 2, 256 a call back to back): p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms;", $1, $10, $12, $14
		printf " end to end p99 at 50 %% / floor p99 %.1fx (target p99 <= 5 ms)\n", p99 / 1000 / $12
	}' "$dir/floor"
else
	echo "  (build/tools/bench-logstore not built: no logstore ratio)"
fi
