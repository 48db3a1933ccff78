#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The seal path of one worker lcore (a benchmark, not a test). For WAL frames of 64, 256 and
# 1024 B, one pcap written by vaultrep-gen is replayed forever (net_pcap, infinite_rx=1):
#   1. dpdk-testpmd, io forwarding net_pcap -> net_null: the packet I/O ceiling (packets/s);
#   2. vaultrep-dataplane with [bench] seal_only: ingest -> records -> batches -> one
#      AES-256-GCM seal per batch (crypto_aesni_gcm, CPU crypto) -> the WAN port (net_null).
#      No log, no acks: the durable path is tools/bench-dataplane.sh's (and so is the records'
#      entropy chain and checksum, which the log writer adds: vr_log_append_as);
#   3. dpdk-test-crypto-perf, crypto_aesni_gcm, AES-256-GCM at the batch size the dataplane
#      made (the crypto ceiling).
# Each figure is the median of REPS samples of SECONDS; ratios are against the same run.
# STREAMS streams share the pcap round robin: with many, each stream's batches close by time
# before they fill (the per-stream rate is what batching amortises over).
# Then (D9) the same 64 B load on one worker lcore and on two.
#   tools/bench-seal.sh [SECONDS] [REPS] [STREAMS] [PART]  (defaults 2, 5, 4 and all; PART is
#                                                           all, table or workers)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
reps=${2:-5}
bin=build/dataplane
frames=8192
streams=${3:-4}
part=${4:-all}
dir=$(mktemp -d /var/tmp/vaultrep-bench-seal.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
eal=(--no-huge --no-pci --log-level lib.eal:warning)

calc() { awk "BEGIN {printf \"%.6f\", $1}"; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

testpmd_pps() { # pcap
	local run=$((reps * secs + 3))
	timeout -s INT "$run" dpdk-testpmd -l 0,1 -m 512 "${eal[@]}" --file-prefix vrbtp \
		--vdev "net_pcap0,rx_pcap=$1,infinite_rx=1" --vdev net_null0,no-rx=1 -- \
		--forward-mode=io --auto-start --stats-period "$secs" --nb-cores 1 \
		--total-num-mbufs 32768 >"$dir/testpmd.log" 2>&1 || true
	# Port 0 (the pcap) receives; skip the first sample (start-up).
	awk '/Rx-pps:/ && $2 > 0 {print $2}' "$dir/testpmd.log" | tail -n +2 | median
}

crypto_ops() { # buffer-size -> "Mops Gbps"
	dpdk-test-crypto-perf -l 0,1 -m 512 "${eal[@]}" --file-prefix vrbcp --vdev crypto_aesni_gcm0 \
		-- --ptest throughput --devtype crypto_aesni_gcm --optype aead --aead-algo aes-gcm \
		--aead-op encrypt --aead-key-sz 32 --aead-iv-sz 12 --aead-aad-sz 48 --digest-sz 16 \
		--buffer-sz "$1" --total-ops 2000000 --burst-sz 32 2>/dev/null |
		awk '$1 == 1 && NF >= 10 {print $8, $9}'
}

stat() { # socket -> "records_sealed_only batches_sealed"
	tools/dpctl "$1" stats | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
print(c["records_sealed_only"], c["batches_sealed"])'
}

dataplane() { # pcap [workers queues accounts...] -> "records/s records-per-batch"
	local d=$dir/dp key a pcap=$1 workers=${2:-1} queues=${3:-1} lcores=0,1 rx="" accounts
	shift 3 2>/dev/null || shift $#
	accounts=${*:-$(seq 1 "$streams")}
	rm -rf "$d" && mkdir -p "$d"
	# One rx_pcap per queue; more lcores than cores float over both.
	for q in $(seq 0 $((queues - 1))); do rx+=",rx_pcap=${pcap/@Q@/$q}"; done
	[ "$workers" -gt 1 ] && lcores="(0-$workers)@(0-1)"
	cat >"$d/dp.ini" <<INI
[site]
id = 1
log_dir = $d/wal
control = $d/ctl.sock
[lan]
port = 0
ip = 198.18.1.1
queues = $queues
[wan]
port = 1
ip = 198.19.0.1
queues = $workers
[peer 2]
ip = 198.19.0.2
mac = 02:00:00:00:02:02
[lcores]
workers = $workers
[bench]
seal_only = 1
INI
	"$bin/vaultrep-dataplane" --lcores "$lcores" -m 512 "${eal[@]}" --file-prefix vrbseal \
		--vdev "net_pcap0${rx},infinite_rx=1" --vdev net_null0,no-rx=1 \
		-- --config "$d/dp.ini" >"$d/log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do [ -S "$d/ctl.sock" ] && break; sleep 0.1; done
	key=$(head -c 32 /dev/urandom | base64)
	for a in $accounts; do
		echo "{\"op\": \"stream.add\", \"account\": $a, \"vault\": 1, \"members\": [2]}"
		echo "{\"op\": \"key.set\", \"account\": $a, \"vault\": 1, \"key_id\": 1, \"key\": \"$key\"}"
	done | tools/dpctl "$d/ctl.sock" - >/dev/null
	sleep 1
	local prev now r0 b0 r1 b1 rates=() per=()
	read -r r0 b0 < <(stat "$d/ctl.sock")
	prev=$(date +%s.%N)
	for _ in $(seq "$reps"); do
		sleep "$secs"
		read -r r1 b1 < <(stat "$d/ctl.sock")
		now=$(date +%s.%N)
		rates+=("$(calc "($r1 - $r0) / ($now - $prev)")")
		per+=("$(calc "($r1 - $r0) / ($b1 - $b0)")")
		r0=$r1 b0=$b1 prev=$now
	done
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
	echo "$(printf '%s\n' "${rates[@]}" | median) $(printf '%s\n' "${per[@]}" | median)"
}

if [ "$part" != workers ]; then
echo "== seal path, one worker lcore: net_pcap (infinite_rx) -> vaultrep-dataplane [bench] seal_only -> net_null"
echo "   $frames frames over $streams streams per pcap; medians of $reps x ${secs} s"
printf '%-6s %12s %8s %12s %7s %10s %10s %12s %7s %7s %7s\n' size records/s Gb/s testpmd-pps ratio rec/batch seal-Gb/s crypto-Gb/s ratio bound1 bound2
for size in 64 256 1024; do
	pcap=$dir/f$size.pcap
	"$bin/vaultrep-gen" -l 0 --no-huge -m 128 --no-pci --file-prefix vrbgen \
		--log-level lib.eal:warning --vdev net_null0 -- --ip 198.18.1.9 --dst 198.18.1.1 \
		--streams $streams --records $frames --size "$size" --pcap "$pcap" >/dev/null
	pps=$(testpmd_pps "$pcap")
	read -r rate per < <(dataplane "$pcap")
	# A record is the 56-byte record header and the payload; a batch seals per records.
	bufsz=$(awk "BEGIN {printf \"%d\", $per * (56 + $size)}")
	read -r mops cgbps < <(crypto_ops "$bufsz")
	wire=$((size + 40 + 42)) # the ingest frame on the wire: payload, our header, Eth/IPv4/UDP
	# The most one lcore could do if it did nothing but testpmd's packet I/O and crypto-perf's
	# seal, one after the other: records/s = 1 / (1/pps + a record's share of the seal time).
	bound=$(calc "1 / (1 / $pps + (56 + $size) * 8 / ($cgbps * 1000000000))")
	printf '%-6s %12.0f %8.2f %12.0f %7.2f %10.1f %10.2f %12.2f %7.2f %7.2f %7.2f\n' "$size" \
		"$rate" "$(calc "$rate * $wire * 8 / 1000000000")" "$pps" "$(calc "$rate / $pps")" \
		"$per" "$(calc "$rate * (56 + $size) * 8 / 1000000000")" "$cgbps" \
		"$(calc "$rate * (56 + $size) * 8 / 1000000000 / $cgbps")" "$(calc "$bound / $pps")" \
		"$(calc "$bound * (56 + $size) * 8 / 1000000000 / $cgbps")"
done
echo "   ratio 1: records/s over testpmd's packets/s (target >= 0.6 at 64 B)"
echo "   ratio 2: the plaintext the seal path sealed over crypto-perf's at that batch size (target >= 0.9 at 1024 B)"
echo "   bound1, bound2: ratios 1 and 2 of an lcore that only did testpmd's I/O and crypto-perf's seal, in turn"
echo "   (no parsing, CRC, look-up or batching): the ceiling of each ratio on this machine"
fi
[ "$part" = table ] && exit 0

# D9: the same load on one and on two worker lcores. Two rx queues (an rx_pcap each), each
# holding the streams one worker owns (as a NIC steering by stream would): worker w reads
# queue w. With one worker, that worker reads both queues. (net_pcap keeps a queue's whole pcap
# in mbufs: $frames / 2 frames a queue.)
owners() { # -> two lines: the first $streams accounts (vault 1, primary 1) worker 0 owns, then 1's
	# Asked of a dataplane with two workers (stream.show "worker"), not computed again here.
	local d=$dir/probe
	rm -rf "$d" && mkdir -p "$d"
	cat >"$d/dp.ini" <<INI
[site]
id = 1
log_dir = $d/wal
control = $d/ctl.sock
[lan]
port = 0
ip = 198.18.1.1
[wan]
port = 1
ip = 198.19.0.1
[peer 2]
ip = 198.19.0.2
mac = 02:00:00:00:02:02
[lcores]
workers = 2
[bench]
seal_only = 1
INI
	"$bin/vaultrep-dataplane" --lcores "(0-2)@(0-1)" -m 256 "${eal[@]}" --file-prefix vrbprobe \
		--vdev net_null0,no-rx=1 --vdev net_null1,no-rx=1 -- --config "$d/dp.ini" >"$d/log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do [ -S "$d/ctl.sock" ] && break; sleep 0.1; done
	for a in $(seq 1 $((streams * 8))); do
		echo "{\"op\": \"stream.add\", \"account\": $a, \"vault\": 1, \"members\": [2]}"
		echo "{\"op\": \"stream.show\", \"account\": $a, \"vault\": 1}"
	done | tools/dpctl "$d/ctl.sock" - | python3 -c '
import json, sys
want = int(sys.argv[1])
by = {0: [], 1: []}
for line in sys.stdin:
    r = json.loads(line)
    if "worker" in r:
        by[r["worker"]].append(str(r["account"]))
for w in (0, 1):
    print(" ".join(by[w][:want]))' "$streams"
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
}
merge() { # out in... : the frames of every input pcap, interleaved
	python3 - "$@" <<'PY'
import struct, sys
out, ins = sys.argv[1], sys.argv[2:]
frames, hdr = [], None
for path in ins:
    b = open(path, "rb").read()
    hdr, off, fr = b[:24], 24, []
    while off + 16 <= len(b):
        n = struct.unpack_from("<I", b, off + 8)[0]
        fr.append(b[off:off + 16 + n])
        off += 16 + n
    frames.append(fr)
with open(out, "wb") as f:
    f.write(hdr)
    for i in range(max(len(x) for x in frames)):
        for x in frames:
            if i < len(x):
                f.write(x[i])
PY
}
echo
echo "== D9: 64 B frames, $streams streams per worker, one worker lcore vs two (medians of $reps x ${secs} s)"
all=""
mapfile -t owned < <(owners)
for w in 0 1; do
	parts=()
	for a in ${owned[$w]}; do
		"$bin/vaultrep-gen" -l 0 --no-huge -m 128 --no-pci --file-prefix vrbgen \
			--log-level lib.eal:warning --vdev net_null0 -- --ip 198.18.1.9 --dst 198.18.1.1 \
			--account "$a" --streams 1 --records $((frames / 2 / streams)) --size 64 \
			--pcap "$dir/a$a.pcap" >/dev/null
		parts+=("$dir/a$a.pcap")
		all+=" $a"
	done
	merge "$dir/q$w.pcap" "${parts[@]}"
done
read -r one _ < <(dataplane "$dir/q@Q@.pcap" 1 2 $all)
read -r two _ < <(dataplane "$dir/q@Q@.pcap" 2 2 $all)
printf '%-22s %12s\n' workers records/s
printf '%-22s %12.0f\n' "1 (reads both queues)" "$one"
printf '%-22s %12.0f\n' "2 (a queue each)" "$two"
echo "   two workers / one: $(calc "$two / $one") (this machine has 2 cores, shared with the main lcore)"
