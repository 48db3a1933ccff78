#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs every Debian 12 package vaultrep needs to build, test and benchmark. Idempotent: does
# nothing when all are present; otherwise one `apt-get update` and one install. Quiet unless it
# fails. Runs as root, or through sudo when there is one.
set -euo pipefail

PKGS=(
	build-essential meson ninja-build pkg-config python3  # build
	clang libclang-rt-14-dev clang-format                 # ASan/UBSan, libFuzzer, style
	librocksdb-dev libssl-dev libisal-dev uthash-dev      # logstore
	softhsm2 libp11-kit-dev libjansson-dev                # hsm_agent (PKCS#11, JSON)
	check                                                 # unit tests
	util-linux                                            # unshare/mount for the disk-full test
	dpdk-dev libinih-dev libpcap-dev                      # dataplane, generator
	librte-net-memif23 librte-net-af-packet23 librte-net-null23 librte-net-pcap23
	librte-crypto-ipsec-mb23 librte-crypto-openssl23      # dataplane's virtual devices
	iproute2 ethtool                                      # namespaces and veth pairs in tests
	libevent-dev openssl                                  # control (event loop, TLS), vr-pki
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps.sh: could not install: ${missing[*]}" >&2
	exit 1
fi
