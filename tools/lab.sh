#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job (A4): two sites on this machine, replicating. Installs what is missing, builds,
# starts site 1 (east) and site 2 (west) -- each an HSM agent on its own SoftHSMv2, a DPDK
# dataplane (WAN over memif between the sites, LAN over memif toward the packet generator) and
# a control process -- then, through vaultrepctl as an operator would:
#   peers the sites, creates a vault with keys at east, replicates it to west, shows west
#   decrypting what east encrypted, runs the generator for a few seconds of WAL traffic into
#   the vault's account WAL and prints throughput and latency, verifies that both sites hold
#   the same keys and WAL (vault verify); then stops everything and cleans up.
#   tools/lab.sh [SECONDS]      (generator run, default 5)       tools/lab.sh --help
#
#   vaultrepctl --connect (mTLS) --> control 1 <--peer link (mTLS, pinned)--> control 2
#                                     |      \                             /      |
#   vaultrep-gen ==LAN memif==> dataplane 1 ===WAN memif=== dataplane 2     agent 2
#                                  agent 1
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h | --help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
seconds=${1:-5}
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] && [ "$seconds" -le 600 ] ||
	{ echo "lab.sh: SECONDS must be 1..600" >&2; exit 2; }

say() { printf '\n== %s\n' "$*"; }

say "1. packages (tools/deps.sh) and build (meson, ninja: build/)"
tools/deps.sh
if [ ! -f build/build.ninja ]; then
	meson setup build -Dtests=enabled >/dev/null
fi
ninja -C build >/dev/null
echo "built: build/control/vaultrep-control, build/dataplane/vaultrep-dataplane, build/hsm_agent/vaultrep-hsm-agent, build/control/vaultrepctl"

dir=$(mktemp -d /var/tmp/vaultrep-lab.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_sock() { # socket what logfile
	for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done
	echo "lab.sh: $2 did not start; its log:" >&2
	cat "$3" >&2
	exit 1
}

declare -A mgmt peer
site() { # id name
	local id=$1 name=$2 d=$dir/site$1
	mkdir -p "$d/tokens"
	mgmt[$id]=$(free_port)
	peer[$id]=$(free_port)
	tools/vr-pki site "$d/pki/site" "$name" | sed 's/^/  /'
	tools/vr-pki ca "$d/pki/ops" >/dev/null
	tools/vr-pki operator "$d/pki/ops" alice admin >/dev/null
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$d" >"$d/softhsm2.conf"
	SOFTHSM2_CONF=$d/softhsm2.conf build/hsm_agent/vaultrep-hsm-agent --socket "$d/agent.sock" \
		--state "$d/agent" --dataplane-uid "$(id -u)" >"$d/agent.log" 2>&1 &
	pids+=($!)
	wait_sock "$d/agent.sock" "HSM agent $id" "$d/agent.log"
	cat >"$d/dp.ini" <<INI
[site]
id = $id
log_dir = $d/wal
control = $d/dp.sock
hsm = $d/agent.sock
[lan]
port = 0
ip = 198.18.$id.1
[wan]
port = 1
ip = 198.19.0.$id
[peer $((3 - id))]
ip = 198.19.0.$((3 - id))
INI
	build/dataplane/vaultrep-dataplane -l 0,1 --no-huge -m 256 --no-pci --file-prefix "vrlab$id" \
		--log-level lib.eal:warning \
		--vdev "net_memif0,role=server,socket=$d/lan.sock,socket-abstract=no" \
		--vdev "net_memif1,role=$([ "$id" = 1 ] && echo server || echo client),socket=$dir/wan.sock,socket-abstract=no" \
		-- --config "$d/dp.ini" >"$d/dp.log" 2>&1 &
	pids+=($!)
	wait_sock "$d/dp.sock" "dataplane $id" "$d/dp.log"
	cat >"$d/control.conf" <<INI
[site]
id = $id
name = $name
state = $d/control
hsm = $d/agent.sock
dataplane = $d/dp.sock
[mgmt]
listen = 127.0.0.1:${mgmt[$id]}
socket = $d/control.sock
cert = $d/pki/site/site.crt
key = $d/pki/site/site.key
operator_ca = $d/pki/ops/ca.crt
[peers]
listen = 127.0.0.1:${peer[$id]}
INI
	build/control/vaultrep-control --config "$d/control.conf" >"$d/control.log" 2>&1 &
	pids+=($!)
	wait_sock "$d/control.sock" "control $id" "$d/control.log"
	echo "  site $id ($name): agent, dataplane, control up; management port 127.0.0.1:${mgmt[$id]}"
}

# vaultrepctl as alice (admin) over the management port of site $1, echoing the command.
vctl() {
	local id=$1; shift
	echo "site$id\$ vaultrepctl $*"
	build/control/vaultrepctl --connect "127.0.0.1:${mgmt[$id]}" \
		--ca "$dir/site$id/pki/site/site.crt" --cert "$dir/site$id/pki/ops/alice.crt" \
		--key "$dir/site$id/pki/ops/alice.key" "$@" | sed 's/^/    /'
}
json() { # site, then the command: its --json output
	local id=$1; shift
	build/control/vaultrepctl --json --connect "127.0.0.1:${mgmt[$id]}" \
		--ca "$dir/site$id/pki/site/site.crt" --cert "$dir/site$id/pki/ops/alice.crt" \
		--key "$dir/site$id/pki/ops/alice.key" "$@"
}

say "2. two sites, each its TLS identity and operator CA (tools/vr-pki), HSM agent, dataplane, control ($dir)"
site 1 east
site 2 west

say "3. each site makes its key-encryption key pair in its HSM"
vctl 1 site init
vctl 2 site init

say "4. peering: each site pins the other's certificate; the sites exchange public keys"
vctl 1 peer add site 2 name west address "127.0.0.1:${peer[2]}" pin "$(tools/vr-pki fingerprint "$dir/site2/pki/site/site.crt")"
vctl 2 peer add site 1 name east address "127.0.0.1:${peer[1]}" pin "$(tools/vr-pki fingerprint "$dir/site1/pki/site/site.crt")"
vctl 1 peer list

say "5. a vault at east (its own HSM partition and masking key, its account WAL), three keys, one rotated"
vctl 1 vault create account 42 name payments
vctl 1 key create account 42 vault payments key orders
vctl 1 key create account 42 vault payments key cards
vctl 1 key create account 42 vault payments key tokens
ct=$(json 1 key encrypt account 42 vault payments key orders data "order 1001: 3 parcels" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["ciphertext"])')
echo "site1\$ vaultrepctl key encrypt account 42 vault payments key orders data \"order 1001: 3 parcels\""
echo "    ciphertext               $ct"
vctl 1 key rotate account 42 vault payments key orders

say "6. replicate to west: capacity handshake, partition, masking key, then the vault's WAL (its keys)"
vctl 1 vault replicate account 42 name payments site 2
vctl 2 vault show account 42 name payments

say "7. west decrypts what east encrypted (under the older version of the key)"
vctl 2 key decrypt account 42 vault payments key orders ciphertext "$ct"

say "8. continuous replication: a rotation and a deletion at east reach west; west refuses writes"
vctl 1 key rotate account 42 vault payments key cards
vctl 1 key delete account 42 vault payments key tokens
for _ in $(seq 100); do
	json 2 key list account 42 vault payments | grep -q tokens || break
	sleep 0.1
done
vctl 2 key list account 42 vault payments
vctl 2 key create account 42 vault payments key rogue || true

say "9. WAL traffic: vaultrep-gen sends 64-byte frames into the vault's account WAL at east for ${seconds} s"
vault_id=$(json 1 vault show account 42 name payments | python3 -c 'import json,sys; print(json.load(sys.stdin)["vault"]["id"])')
# It stops after SECONDS with frames still in flight: its exit status says so; its report is
# what matters here.
report=$(build/dataplane/vaultrep-gen -l 1 --no-huge -m 128 --no-pci --file-prefix vrlabg \
	--log-level lib.eal:warning \
	--vdev "net_memif0,role=client,socket=$dir/site1/lan.sock,socket-abstract=no" -- \
	--ip 198.18.1.9 --dst 198.18.1.1 --account 42 --vault "$vault_id" --streams 1 \
	--records 100000000 --size 64 --window 512 --seconds "$seconds" 2>&1) || true
if ! grep -q '^vaultrep-gen: sent' <<<"$report"; then
	echo "lab.sh: the generator did not run:" >&2
	echo "$report" >&2
	exit 1
fi
grep '^vaultrep-gen' <<<"$report" | sed 's/^/    /'
sleep 1
echo "the vault's WAL at east, then its copy at west:"
vctl 1 stream show account 42 vault "$vault_id" | grep -E '^ *(durable_lsn|records|batches|members)' || true
vctl 2 stream show account 42 vault "$vault_id" primary 1 | grep -E '^ *(durable_lsn|records)' || true

say "10. verify: the vault's digest (Merkle roots of its keys and its WAL) at east and at west"
vctl 1 vault verify account 42 name payments
vctl 1 audit show max 5

say "11. done: stopping every process and removing $dir"
