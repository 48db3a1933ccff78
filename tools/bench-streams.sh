#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Many streams on one dataplane (a benchmark, not a test):
#   1. memory per idle stream: a seal_only dataplane before and after STREAMS origin streams
#      (stream.add, one member, and key.set: each with its payload key), from its "memory"
#      figures: growth of DPDK's heap and the C heap, crypto sessions in use (an idle stream's
#      key holds none: [crypto] session_idle_ms), and the stream table's share (allocated
#      whole at start for 262 144 streams);
#   2. throughput with STREAMS configured against one configured: ACTIVE streams carry 64 B
#      frames (a net_pcap replayed forever, as tools/bench-seal.sh) through the seal path,
#      records/s as the median of REPS samples of SECONDS, first with only the ACTIVE streams
#      configured, then with STREAMS (the others idle). The ratio is of the same run.
#   tools/bench-streams.sh [STREAMS] [SECONDS] [REPS] [ACTIVE]   (defaults 100000 2 5 4)
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-100000}
secs=${2:-2}
reps=${3:-5}
active=${4:-4}
bin=build/dataplane
dir=$(mktemp -d /var/tmp/vaultrep-bench-streams.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
eal=(--no-huge --no-pci --log-level lib.eal:warning)
calc() { awk "BEGIN {printf \"%.6f\", $1}"; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
key=$(head -c 32 /dev/urandom | base64)

"$bin/vaultrep-gen" -l 0 --no-huge -m 128 --no-pci --file-prefix vrbsgen --log-level lib.eal:warning \
	--vdev net_null0 -- --ip 198.18.1.9 --dst 198.18.1.1 --streams "$active" --records 8192 \
	--size 64 --pcap "$dir/f.pcap" >/dev/null

start() {
	rm -rf "$dir/dp" && mkdir -p "$dir/dp"
	cat >"$dir/dp/dp.ini" <<INI
[site]
id = 1
log_dir = $dir/dp/wal
control = $dir/dp/ctl.sock
[lan]
port = 0
ip = 198.18.1.1
[wan]
port = 1
ip = 198.19.0.1
[peer 2]
ip = 198.19.0.2
mac = 02:00:00:00:02:02
[crypto]
sessions = $((total + 1024))
[bench]
seal_only = 1
INI
	"$bin/vaultrep-dataplane" -l 0,1 -m $((512 + total / 256)) "${eal[@]}" --file-prefix vrbstreams \
		--vdev "net_pcap0,rx_pcap=$dir/f.pcap,infinite_rx=1" --vdev net_null0,no-rx=1 \
		-- --config "$dir/dp/dp.ini" >"$dir/dp/log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do [ -S "$dir/dp/ctl.sock" ] && return 0; sleep 0.1; done
	cat "$dir/dp/log" >&2
	exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

add() { # from to: origin streams with their keys, progress every 10 000
	local from=$1 to=$2 a
	for ((a = from; a <= to; a++)); do
		echo "{\"op\": \"stream.add\", \"account\": $a, \"vault\": 1, \"members\": [2]}"
		echo "{\"op\": \"key.set\", \"account\": $a, \"vault\": 1, \"key_id\": 1, \"key\": \"$key\"}"
		if ((a % 10000 == 0)); then echo "   $a streams" >&2; fi
	done | tools/dpctl "$dir/dp/ctl.sock" - | python3 -c '
import json, sys
bad = [l for l in sys.stdin if json.loads(l).get("status")]
if bad:
    sys.exit("refused: " + bad[0])'
}

mem() { # -> "heap sessions session_bytes table streams" (heap: DPDK's and the C heap)
	tools/dpctl "$dir/dp/ctl.sock" stats | python3 -c '
import json, sys
m = json.load(sys.stdin)["memory"]
print(m["heap_bytes"] + m["c_heap_bytes"], m["sessions"], m["session_bytes"],
      m["stream_table_bytes"], m["streams"])'
}

rate() { # median records/s of the seal path
	local r0 r1 t0 t1 rates=()
	sleep 1
	r0=$(tools/dpctl "$dir/dp/ctl.sock" stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["records_sealed_only"])')
	t0=$(date +%s.%N)
	for _ in $(seq "$reps"); do
		sleep "$secs"
		r1=$(tools/dpctl "$dir/dp/ctl.sock" stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["records_sealed_only"])')
		t1=$(date +%s.%N)
		rates+=("$(calc "($r1 - $r0) / ($t1 - $t0)")")
		r0=$r1 t0=$t1
	done
	printf '%s\n' "${rates[@]}" | median
}

echo "== $total streams on one dataplane (seal_only, one worker); $active of them carry 64 B frames"
start
add 1 "$active"
one=$(rate)
read -r h0 s0 sb0 table n0 < <(mem)
t=$(date +%s.%N)
add $((active + 1)) "$total"
echo "   stream.add and key.set of $((total - active)) streams: $(calc "$(date +%s.%N) - $t") s"
read -r h1 s1 sb1 _ n1 < <(mem)
# The adds wrote 2 synced rows a stream: let the store's background work (RocksDB flushes and
# compactions, on the same two cores) finish before measuring.
sleep 20
many=$(rate)
stop
added=$((n1 - n0))
heap=$(calc "($h1 - $h0) / $added")
sess=$(calc "($sb1 - $sb0) / $added")
share=$(calc "$table / 262144")
printf '%-44s %10s\n' "memory per stream" bytes
printf '%-44s %10.0f\n' "  stream state and its key (heaps)" "$heap"
printf '%-44s %10.0f\n' "  its crypto session ($(((s1 - s0) / added)) per stream)" "$sess"
printf '%-44s %10.0f\n' "  its entry of the stream table" "$share"
printf '%-44s %10.0f   (target <= 1024)\n' "  total" "$(calc "$heap + $sess + $share")"
printf '%-44s %10s\n' "throughput, $active active streams" records/s
printf '%-44s %10.0f\n' "  $active streams configured" "$one"
printf '%-44s %10.0f\n' "  $n1 streams configured" "$many"
echo "   ratio: $(calc "$many / $one") (target >= 0.9)"
