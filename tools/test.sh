#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The test command. Installs what is missing, then builds and runs everything:
#   build/       gcc, optimised:                  unit + integration suites
#   build-asan/  clang, ASan + UBSan + libFuzzer: unit + integration suites again, then every
#                fuzz harness for $VR_FUZZ_RUNS executions (default 10 000 000: figure 11) from
#                its corpus, as many harnesses at a time as the machine has cores
# then checks the formatting, and ends with the line "N passed, N failed" (Check test cases,
# plus one per fuzz harness and one for the style check).
# Exit status 0 only when nothing failed. Benchmarks are not tests: see tools/bench.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tools/deps.sh || exit 1

fuzz_runs=${VR_FUZZ_RUNS:-10000000}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

setup() { # dir, meson args...
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >"$results/setup-$dir.log" 2>&1
	else
		meson setup "$dir" "$@" >"$results/setup-$dir.log" 2>&1
	fi || { cat "$results/setup-$dir.log" >&2; echo "test.sh: meson setup $dir failed" >&2; return 1; }
	ninja -C "$dir" >"$results/ninja-$dir.log" 2>&1 ||
		{ cat "$results/ninja-$dir.log" >&2; echo "test.sh: build of $dir failed" >&2; return 1; }
}

status=0
setup build -Dtests=enabled || exit 1
CC=clang setup build-asan -Dtests=enabled -Dfuzz=true -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug || exit 1

echo "== unit and integration suites (gcc)"
VR_FIGURES="$results/figures-gcc.tsv" \
	meson test -C build --suite unit --suite integration --print-errorlogs --no-rebuild || status=1
cp build/meson-logs/testlog.json "$results/gcc.json"

# The kill loops of figures 1, 2 and 10 run their 100 kills in the gcc build; ASan makes every
# restart several times slower, so its build runs $VR_KILLS_ASAN (10) of them, and figure 10
# $VR_BATCHES_PER_KILL_ASAN (20 000) batches between two of them.
echo "== unit and integration suites (clang, ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LSAN_OPTIONS=suppressions="$root/tests/fuzz/lsan.supp" \
	VR_FIGURES="$results/figures-asan.tsv" VR_KILLS=${VR_KILLS_ASAN:-10} \
	VR_BATCHES_PER_KILL=${VR_BATCHES_PER_KILL_ASAN:-20000} \
	meson test -C build-asan --suite unit --suite integration --print-errorlogs --no-rebuild || status=1
cp build-asan/meson-logs/testlog.json "$results/asan.json"

# Figure 11: every harness runs $fuzz_runs executions from its corpus, as many at a time as
# this machine has cores (nothing else runs now), the slowest first so that they end together.
echo "== fuzz harnesses ($fuzz_runs executions each, $(nproc) at a time)"
: >"$results/extra.txt"
fuzz_one() { # name
	local name=$1 fz=build-asan/tests/fuzz/fuzz-$1 t0=$SECONDS
	mkdir -p "$results/corpus-$name"
	if LSAN_OPTIONS=suppressions="$root/tests/fuzz/lsan.supp" \
		"$fz" -runs="$fuzz_runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
		"$results/corpus-$name" "$root/tests/fuzz/corpus/$name" >"$results/fuzz-$name.log" 2>&1; then
		echo OK >"$results/fuzz-$name.status"
	else
		echo FAIL >"$results/fuzz-$name.status"
	fi
	echo $((SECONDS - t0)) >"$results/fuzz-$name.seconds"
}
fuzz_t0=$SECONDS
fuzz_names=()
for name in ctl_request ctl_cmdfile hsm_wire record dp_conf ctl_conf wire; do
	[ -x "build-asan/tests/fuzz/fuzz-$name" ] && fuzz_names+=("$name")
done
for fz in build-asan/tests/fuzz/fuzz-*; do # any harness the list above does not name yet
	[ -f "$fz" ] && [ -x "$fz" ] || continue
	name=${fz##*/fuzz-}
	[[ " ${fuzz_names[*]} " == *" $name "* ]] || fuzz_names+=("$name")
done
for name in "${fuzz_names[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n; done
	fuzz_one "$name" &
done
wait
fuzz_ok=1
fuzz_measured=""
for name in "${fuzz_names[@]}"; do
	runs=$(grep -o 'Done [0-9]* runs' "$results/fuzz-$name.log" | grep -o '[0-9]*')
	secs=$(cat "$results/fuzz-$name.seconds")
	if [ "$(cat "$results/fuzz-$name.status")" = OK ]; then
		echo "fuzz:$name OK ${runs:-?} runs in ${secs} s"
		echo "fuzz:$name OK" >>"$results/extra.txt"
	else
		tail -40 "$results/fuzz-$name.log"
		echo "fuzz:$name FAIL"
		echo "fuzz:$name FAIL" >>"$results/extra.txt"
		status=1
		fuzz_ok=0
	fi
	[ "${runs:-0}" -ge 10000000 ] || fuzz_ok=0
	fuzz_measured+="$name ${runs:-0} runs ($(cat "$results/fuzz-$name.status")); "
done
printf '11\t%s\t%s\t%s\t%s\n' \
	"libFuzzer, ASan + UBSan: ingest frames, WAN batches, acks and key records (wire), WAL records (record), hsm_agent wire, control and peer requests (ctl_request), configuration (dp_conf, ctl_conf), CLI command files (ctl_cmdfile)" \
	">= 10^7 executions each, 0 crashes, leaks or timeouts; corpus checked in (tests/fuzz/corpus)" \
	"${fuzz_measured}$((SECONDS - fuzz_t0)) s in all" \
	"$([ $fuzz_ok = 1 ] && echo met || echo 'NOT MET')" >>"$results/figures-asan.tsv"
rm -rf /dev/shm/vaultrep-fuzz-ctl.* # fuzz-ctl_request's catalog and audit log

echo "== style (clang-format, the committed .clang-format)"
unformatted=$(git ls-files '*.c' '*.h' 2>/dev/null | while read -r f; do
	clang-format "$f" | cmp -s - "$f" || echo "$f"; done)
if [ -z "$unformatted" ]; then
	echo "style:clang-format OK" >>"$results/extra.txt"
else
	echo "not formatted (run clang-format -i): $unformatted"
	echo "style:clang-format FAIL" >>"$results/extra.txt"
	status=1
fi

# The figures of issue 6 (tests call vr_test_figure), one table; each was asserted by its test.
python3 - "$results" <<'PY'
import os, sys, textwrap
d = sys.argv[1]
rows = {}
for build in ("gcc", "asan"):
    path = os.path.join(d, f"figures-{build}.tsv")
    if os.path.exists(path):
        for line in open(path):
            f = line.rstrip("\n").split("\t")
            if len(f) == 5:
                rows.setdefault(f[0], []).append([build] + f[1:])
print("== figures (issue 6; each one a test: a figure not met failed its test)")
print(f"{'#':>2}  {'BUILD':5}  {'MET':7}  WHAT / TARGET / MEASURED")
for i in range(1, 13):
    for build, what, target, measured, met in rows.get(str(i), []):
        print(f"{i:>2}  {build:5}  {met:7}  {what}; target {target}")
        for l in textwrap.wrap(measured, 90):
            print(f"{'':20}{l}")
    if str(i) not in rows:
        print(f"{i:>2}  {'-':5}  {'-':7}  not built yet")
PY

python3 - "$results" <<'PY'
import json, re, sys, os
d = sys.argv[1]
passed = failed = 0
check = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")
for build in ("gcc", "asan"):
    path = os.path.join(d, build + ".json")
    if not os.path.exists(path):
        continue
    for line in open(path):
        t = json.loads(line)
        m = check.findall(t.get("stdout", "") or "")
        if m:
            n, f, e = (sum(int(x[i]) for x in m) for i in range(3))
            passed += n - f - e
            failed += f + e
            if t["result"] != "OK" and f + e == 0:
                failed += 1  # the binary failed after its cases passed (leak, crash at exit)
                print(f"{build}:{t['name']}: {t['result']} after all cases passed")
        else:
            ok = t["result"] == "OK"
            passed += ok
            failed += not ok
for line in open(os.path.join(d, "extra.txt")):
    ok = line.split()[1] == "OK"
    passed += ok
    failed += not ok
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
summary=$?
[ $summary -ne 0 ] && status=1
exit $status
