#!/usr/bin/env bash
# test-all.sh: the project's test command.
#
# Usage: scripts/test-all.sh [--quick]
#
#   1. one build per architecture: the binaries and test executables, linked statically
#      (scripts/build-env.sh), for the host and every VM alike; on Debian also for the other
#      architecture (amd64 and arm64), cross-built, its toolchain installed where missing;
#   2. on this host, `cargo test` with that build: unit, doc and integration tests (the ones
#      that need root and cgroup v2 are #[ignore]d). Where this host has cgroup v2 with the
#      memory controller and root (or passwordless sudo), the ignored tests then run here too,
#      as root, through a cargo runner (`sudo`), never with cargo itself as root. They change
#      machine-wide state and put it back (see the book's chapter "How it is tested"); HOST_ROOT_TESTS=0
#      leaves them to the VMs.
#      Then the book (scripts/book.sh build): built by mdBook with warnings as errors, every
#      link and anchor between its pages checked;
#   3. the whole suite, ignored tests included, as root inside VMs that boot stock kernels
#      with a pure cgroup v2 hierarchy (scripts/vm.sh test): on Debian, every kernel line of
#      scripts/kernels.sh (5.10, 6.1, 6.12 and the newest), each with one CPU and with two,
#      because a child that starts on another CPU at once behaves differently (see
#      clone3::RseqPause); and the other architecture's kernels (arm64: 6.1, 6.12 and the
#      newest) with two CPUs, emulated, their stress test shortened to OTHER_ARCH_STRESS_RUNS
#      (default 10) runs of each memory scenario. Several VMs run at once, never more virtual CPUs than this host
#      has cores. Elsewhere (Ubuntu), the distribution's own kernel for the host's
#      architecture only, and it says so.
#
#   --quick   one kernel (scripts/kernels.sh default), the host's architecture, two CPUs, no
#             stress test.
#
# A kernel line that cannot be fetched, or an architecture that cannot be built, is named
# and left out; the rest still run. The last lines are a table (architecture, kernel, CPUs,
# tests passed and failed, seconds, boots, retries) and a verdict.
#
# Exit status: 0 when every part that ran passed; 1 when a test failed or a VM never
# finished; 2 when no VM could run (the message says why). SKIP_VM=1 runs only the host part,
# says that the cgroup scenarios were not proven, and exits 3, so that a partial run never
# looks like a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-env.sh
. scripts/build-env.sh

quick=0
case ${1:-} in
    --quick) quick=1 ;;
    '') ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-all.sh: unknown option $1; usage: scripts/test-all.sh [--quick]" >&2; exit 2 ;;
esac

began=$(date +%s)
logs=target/test-all
rm -rf "$logs" && mkdir -p "$logs"
# Test counts of the "test result:" lines of a log: "PASSED FAILED".
counts() {
    awk '/^test result: / { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { print p + 0, f + 0 }' "$@"
}

# The failing tests of a log, each on a line with LABEL (where it ran), followed by the lines
# that explain it: the panic and its message, the scenario's "NOT AS CLAIMED" and "lost its
# bet" lines, an assertion's left and right. Nothing for a log without a failed test.
explain_failures() {
    awk -v label="$1" '
        /^test .* \.\.\. FAILED$/ { if (!($2 in failed)) order[++n] = $2; failed[$2] = 1 }
        /^---- .* stdout ----$/ { current = $2; next }
        /^(failures:|successes:|@@test-end)/ { current = "" }
        current != "" && (current in failed) && shown[current] < 8 {
            if (message || $0 ~ /panicked at|NOT AS CLAIMED|lost its bet|^  left: |^ right: /) {
                why[current] = why[current] "\n    " substr($0, 1, 300)
                shown[current]++
                message = ($0 ~ /panicked at/)
            }
        }
        END { for (i = 1; i <= n; i++) printf "test-all: FAILED on %s: %s%s\n", label, order[i], why[order[i]] }
    ' "$2"
}

# The other architecture, cross-built: only on Debian, whose archive has its kernels.
case $host_arch in amd64) other_arch=arm64 ;; *) other_arch=amd64 ;; esac
arches=("$host_arch")
[ "$quick" = 0 ] && [ -n "$(scripts/kernels.sh --arch "$other_arch" list)" ] && arches+=("$other_arch")

echo "== build: binaries and test executables, static, once per architecture: ${arches[*]}"
scripts/vm.sh build test
unbuilt=()
if [ "${#arches[@]}" -gt 1 ]; then
    if ! scripts/vm.sh build test --arch "$other_arch"; then
        echo "test-all: $other_arch could not be built here (said above): its kernels are NOT tested"
        unbuilt+=("$other_arch")
        arches=("$host_arch")
    fi
fi

echo "== host: cargo test"
start=$(date +%s)
status=0
cargo test "${build_args[@]}" 2>&1 | tee "$logs/host.log" || status=1
mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [ "${HOST_ROOT_TESTS:-1}" = 0 ]; then
    echo "test-all: the root-only tests are left to the VMs on this host (HOST_ROOT_TESTS=0)"
elif [ -z "$mount" ] || ! grep -qw memory "$mount/cgroup.controllers" 2>/dev/null; then
    echo "test-all: this host has no cgroup v2 memory controller (${mount:-no cgroup2 mount}): the root-only tests run in the VMs only"
elif [ "$(id -u)" = 0 ]; then
    echo "== host: the root-only tests, as root"
    cargo test "${build_args[@]}" -- --ignored 2>&1 | tee "$logs/host-root.log" || status=1
elif sudo -n true 2>/dev/null; then
    echo "== host: the root-only tests, as root through a cargo runner (sudo)"
    cargo test "${build_args[@]}" --config "target.'cfg(target_os = \"linux\")'.runner = 'sudo -n'" \
        -- --ignored 2>&1 | tee "$logs/host-root.log" || status=1
else
    echo "test-all: this host has cgroup v2, but the root-only tests need root or passwordless sudo: they run in the VMs only"
fi
echo "== the book: scripts/book.sh build (warnings as errors, every link and anchor)"
book=passed
scripts/book.sh build 2>&1 | tee "$logs/book.log" || { status=1; book=FAILED; }
host_seconds=$(( $(date +%s) - start ))
host_counts=$(counts "$logs"/host*.log)

if [ "${SKIP_VM:-}" = 1 ]; then
    echo "test-all: host part $([ "$status" = 0 ] && echo passed || echo FAILED) in ${host_seconds}s; VM part skipped (SKIP_VM=1): cgroup scenarios NOT proven"
    exit 3
fi

# The matrix: architectures x kernel lines x CPU counts, as jobs ARCH:LINE:CPUS. The host's
# architecture first, with one CPU and two; the other with two.
cores=$(nproc)
queue=()
missing=()
for arch in "${arches[@]}"; do
    mapfile -t lines < <(scripts/kernels.sh --arch "$arch" list)
    if [ "$quick" = 1 ]; then
        lines=("$(scripts/kernels.sh --arch "$arch" default)")
        cpu_counts=(2)
    elif [ "$arch" = "$host_arch" ]; then
        cpu_counts=(1 2)
    else
        cpu_counts=(2)
    fi
    [ "${lines[0]}" = host ] && echo "test-all: not a Debian host: testing $(scripts/kernels.sh describe host)'s own kernel only; the matrix of Debian kernels was NOT run"
    echo "== kernels ($arch): ${lines[*]}"
    usable=()
    for line in "${lines[@]}"; do
        if scripts/kernels.sh --arch "$arch" fetch "$line"; then usable+=("$line"); else missing+=("$line ($arch)"); fi
    done
    for cpus in "${cpu_counts[@]}"; do
        for line in "${usable[@]}"; do
            # A point release kept beside its line's newest kernel is booted once, for what it
            # shows that the newer does not (scripts/kernels.sh says what), with the fewest
            # CPUs: then it runs beside another boot rather than alone.
            case $line in *-point) [ "$cpus" = "${cpu_counts[0]}" ] || continue ;; esac
            queue+=("$arch:$line:$cpus")
        done
    done
done
[ "${#missing[@]}" = 0 ] || echo "test-all: kernel lines that could not be fetched, left out: ${missing[*]}"
if [ "${#queue[@]}" = 0 ]; then
    echo "test-all: no kernel could be had: the cgroup scenarios cannot be proven here" >&2
    exit 2
fi
echo "== VMs: ${#queue[@]} runs of the whole suite$([ "$quick" = 1 ] && echo ", without the stress test"), up to $cores virtual CPUs at a time"

start=$(date +%s)
declare -A cpus_of=() began_at=() seconds_of=() status_of=()
free=$cores
next=0
running=0
# The stress test's 40 runs of each memory scenario per kernel of the host's architecture:
# half with one CPU, half with two. The other architecture, emulated, is slower: fewer runs
# there. (Each memory scenario also runs 10 or 20 times in each boot's own claims, and
# traced: the stress test is what the suite repeats most, and where the time for the traced
# runs came from: it was 200 and 40, and the claims' repeats 20.)
vm_args=(--no-build)
[ "$quick" = 1 ] && vm_args+=(--quick)
stress_runs() { if [ "$1" = "$host_arch" ]; then echo $((40 / (quick ? 1 : 2))); else echo "${OTHER_ARCH_STRESS_RUNS:-10}"; fi; }
# A job's parts and its log: ARCH:LINE:CPUS.
job_arch() { echo "${1%%:*}"; }
job_line() { local rest=${1#*:}; echo "${rest%:*}"; }
job_cpus() { echo "${1##*:}"; }
job_log() { echo "$logs/vm-$(job_arch "$1")-$(job_line "$1")-cpus$(job_cpus "$1").log"; }
# The tests a point release runs: those of what it is kept for.
point_release_tests=(a_whole_cgroup_is_frozen_killed_and_oom_killed_at_once)
launch() {
    local job=$1 arch line cpus only=()
    arch=$(job_arch "$job") line=$(job_line "$job") cpus=$(job_cpus "$job")
    case $line in *-point) only=(--quick -- "${point_release_tests[@]}") ;; esac
    scripts/vm.sh test --arch "$arch" --kernel "$line" --cpus "$cpus" "${vm_args[@]}" \
        --stress-runs "$(stress_runs "$arch")" "${only[@]}" > "$(job_log "$job")" 2>&1 &
    cpus_of[$!]=$cpus
    began_at[$job]=$(date +%s)
    job_of[$!]=$job
    free=$((free - cpus))
    running=$((running + 1))
}
declare -A job_of=()
while [ "$next" -lt "${#queue[@]}" ] || [ "$running" -gt 0 ]; do
    if [ "$next" -lt "${#queue[@]}" ]; then
        want=$(job_cpus "${queue[$next]}")
        # A job wider than the host starts alone.
        if [ "$want" -le "$free" ] || [ "$running" = 0 ]; then
            launch "${queue[$next]}"
            next=$((next + 1))
            continue
        fi
    fi
    done_pid=
    rc=0
    wait -n -p done_pid || rc=$?
    job=${job_of[$done_pid]}
    free=$((free + ${cpus_of[$done_pid]}))
    running=$((running - 1))
    seconds_of[$job]=$(( $(date +%s) - ${began_at[$job]} ))
    status_of[$job]=$rc
    read -r passed failed < <(counts "$(job_log "$job")")
    echo "test-all: $(job_line "$job") ($(job_arch "$job")) with $(job_cpus "$job") CPU(s): $passed passed, $failed failed, ${seconds_of[$job]} s$([ "$rc" = 0 ] || echo ", exit $rc: see $(job_log "$job")")"
done
vm_seconds=$(( $(date +%s) - start ))

echo
printf '%-5s %-36s %4s %7s %7s %8s %6s %8s\n' arch kernel cpus passed failed seconds boots retried
all_boots=0 all_retries=0
for job in "${queue[@]}"; do
    arch=$(job_arch "$job") line=$(job_line "$job") cpus=$(job_cpus "$job") log=$(job_log "$job")
    read -r passed failed < <(counts "$log")
    read -r boots retries < <(awk -F'[= ]' '/^vm.sh: boots=/ { b += $3; r += $5 } END { print b + 0, r + 0 }' "$log")
    all_boots=$((all_boots + boots)) all_retries=$((all_retries + retries))
    label="$(scripts/kernels.sh --arch "$arch" version "$line") ($(scripts/kernels.sh describe "$line"))"
    printf '%-5s %-36s %4s %7s %7s %8s %6s %8s\n' "$arch" "$label" "$cpus" "$passed" "$failed" "${seconds_of[$job]}" "$boots" "$retries"
    [ "${status_of[$job]}" = 0 ] || status=1
done
echo
for log in "$logs"/host*.log; do explain_failures "the host" "$log"; done
for job in "${queue[@]}"; do
    [ "${status_of[$job]}" = 0 ] && continue
    arch=$(job_arch "$job") line=$(job_line "$job") cpus=$(job_cpus "$job") log=$(job_log "$job")
    where="$(scripts/kernels.sh --arch "$arch" version "$line") with $cpus CPU(s)"
    explained=$(explain_failures "$where" "$log")
    # No failed test: the VM itself did not finish; vm.sh said why.
    [ -n "$explained" ] || explained="test-all: FAILED on $where: $(grep '^vm.sh: ' "$log" | tail -2 | tr '\n' ' ')(log: $log)"
    printf '%s\n' "$explained"
done
[ "$book" = passed ] || echo "test-all: FAILED: the book (scripts/book.sh build; log: $logs/book.log)"
echo "test-all: host ${host_seconds}s (${host_counts% *} passed, ${host_counts#* } failed; the book $book); VMs ${vm_seconds}s; VM boots $all_boots, of them retried $all_retries; in all $(( $(date +%s) - began ))s"
[ "${#missing[@]}" = 0 ] || echo "test-all: NOT tested, could not be fetched: ${missing[*]}"
[ "${#unbuilt[@]}" = 0 ] || echo "test-all: NOT tested, could not be built: ${unbuilt[*]}"
[ "$quick" = 0 ] || echo "test-all: quick mode: one kernel, $host_arch only, two CPUs, no stress test"
echo "test-all: $([ "$status" = 0 ] && echo PASSED || echo FAILED)"
exit "$status"
