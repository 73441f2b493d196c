#!/usr/bin/env bash
# capture.sh: the book's transcripts, captured from real runs in the VM, never typed.
#
# Usage: scripts/capture.sh [LABEL...]
#
# Each line of book/runs.txt names a run: LABEL KERNEL COMMAND... It runs in a VM that boots
# KERNEL (a line of scripts/kernels.sh) with two CPUs, one boot per kernel, all runs of that
# kernel one after the other, and what it printed goes to book/src/runs/LABEL.txt: a first
# line naming the kernel, the architecture and the CPUs, then `$ sudo COMMAND`, everything
# the run printed (with the kernel's own lines, as its console showed them among the run's),
# and the exit status. With LABELs, only those runs are captured again.
#
# A run with --trace is also given --trace-svg: its trace (the lines from "--- the kernel's
# trace" to "--- end of the trace") goes to LABEL.trace.txt, a line in LABEL.txt saying where
# it went, and its picture to LABEL.svg, checked to be well-formed XML.
#
# A run whose scenario did not end as claimed is captured all the same: a chapter may show a
# lost bet on purpose, and tests/lessons.rs checks each transcript against its program.
#
# Exit status: 0 every run captured; 1 a VM did not finish, a run printed nothing, or its
# picture did not come back whole; 2 no VM can run here (vm.sh says why).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-env.sh
. scripts/build-env.sh

list=book/runs.txt
out=book/src/runs
cpus=2
case ${1:-} in -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
wanted=" $* "

# The runs asked for, as LABEL<TAB>KERNEL<TAB>COMMAND.
runs=$(grep -v '^[[:space:]]*\(#\|$\)' "$list" | while read -r label kernel command; do
    [ "$wanted" = "  " ] || [[ $wanted == *" $label "* ]] || continue
    printf '%s\t%s\t%s\n' "$label" "$kernel" "$command"
done)
[ -n "$runs" ] || { echo "capture.sh: no run of $list is named $*" >&2; exit 2; }

scripts/vm.sh build bins
mkdir -p "$out"
status=0
for kernel in $(printf '%s\n' "$runs" | cut -f2 | sort -u); do
    task=
    while IFS=$'\t' read -r label line command; do
        [ "$line" = "$kernel" ] || continue
        shown=$command run=$command after=
        if [[ " $command " == *" --trace "* ]]; then
            shown="$command --trace-svg $label.svg"
            run="$command --trace-svg /tmp/$label.svg"
            # Printed after the run, when the kernel's console is quiet.
            after="echo '@@svg-begin $label'; cat '/tmp/$label.svg'; echo '@@svg-end $label'; "
        fi
        task+="echo '@@capture-begin $label'; echo '\$ sudo $shown'; (cd /tmp && $run); echo \"(exit status \$?)\"; echo '@@capture-end $label'; $after"
    done <<< "$runs"
    log=$(mktemp)
    echo "capture.sh: $kernel: $(printf '%s\n' "$runs" | awk -F'\t' -v k="$kernel" '$2 == k' | wc -l) run(s)"
    # A run that ends not as claimed makes the task's last status non-zero: that is not a
    # failure to capture.
    scripts/vm.sh exec --no-build --kernel "$kernel" --cpus "$cpus" "$task true" > "$log" 2>&1 || {
        grep -q '^@@vm-done' "$log" || { echo "capture.sh: $kernel: the VM did not finish:" >&2; tail -5 "$log" >&2; status=1; rm -f "$log"; continue; }
    }
    booted=$(sed -n 's/^@@vm-up \([^ ]*\) cpus=\([0-9]*\).*/\1 \2/p' "$log" | head -1)
    header="# Linux ${booted% *} ($(scripts/kernels.sh describe "$kernel")), $(uname -m | sed 's/aarch64/arm64/; s/x86_64/x86-64/'), ${booted#* } CPUs, under qemu"
    while IFS=$'\t' read -r label line command; do
        [ "$line" = "$kernel" ] || continue
        body=$(sed -n "/^@@capture-begin $label\$/,/^@@capture-end $label\$/p" "$log" | sed '1d;$d')
        if [ -z "$body" ]; then
            echo "capture.sh: $label printed nothing" >&2; status=1; continue
        fi
        if printf '%s\n' "$body" | grep -q "^--- the kernel's trace of this run"; then
            printf '%s\n' "$body" | sed -n "/^--- the kernel's trace of this run/,/^--- end of the trace\$/p" > "$out/$label.trace.txt"
            body=$(printf '%s\n' "$body" | sed "/^--- the kernel's trace of this run/,/^--- end of the trace\$/c\\
[the kernel's trace of this run, $(wc -l < "$out/$label.trace.txt") lines, is in $label.trace.txt]")
            # A console line of the kernel may have landed among the picture's: dropped.
            sed -n "/^@@svg-begin $label\$/,/^@@svg-end $label\$/p" "$log" | sed '1d;$d' \
                | grep -v '^\[ *[0-9]*\.[0-9]*\] ' > "$out/$label.svg"
            if ! python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$out/$label.svg" 2>/dev/null; then
                echo "capture.sh: $label: the picture did not come back whole" >&2; status=1
            fi
        fi
        printf '%s\n%s\n' "$header" "$body" > "$out/$label.txt"
        echo "capture.sh: $out/$label.txt ($(printf '%s\n' "$body" | tail -1))"
    done <<< "$runs"
    rm -f "$log"
done
exit "$status"
