#!/usr/bin/env bash
# make-foo-cgroup.sh: create the cgroup the original version of these programs expected,
# /sys/fs/cgroup/foo, the way its README told people to by hand:
#
#   echo +memory > /sys/fs/cgroup/cgroup.subtree_control
#   mkdir /sys/fs/cgroup/foo
#
# Then: sudo target/release/clone_waitpid_cgroup_memory --cgroup /sys/fs/cgroup/foo
# The scenarios set memory.max there themselves and never remove a cgroup given with
# --cgroup; remove it with `rmdir /sys/fs/cgroup/foo` once it is empty.
#
# Usage: sudo scripts/make-foo-cgroup.sh [NAME]    (NAME defaults to foo)
set -euo pipefail

name=${1:-foo}
case $name in */*|.|..|'') echo "make-foo-cgroup.sh: NAME must be a plain directory name" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "make-foo-cgroup.sh: needs root: run it with sudo" >&2; exit 2; }
mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$mount" ] || { echo "make-foo-cgroup.sh: no cgroup2 filesystem is mounted" >&2; exit 2; }
grep -qw memory "$mount/cgroup.controllers" || {
    echo "make-foo-cgroup.sh: the memory controller is not available in $mount (cgroup v1 or hybrid host)" >&2
    exit 2
}
# The root cgroup hands the controller down to its children; it is exempt from the
# no-internal-process rule, so this works although it holds processes.
if ! grep -qw memory "$mount/cgroup.subtree_control"; then
    echo +memory > "$mount/cgroup.subtree_control"
    echo "wrote +memory to $mount/cgroup.subtree_control"
fi
if [ -d "$mount/$name" ]; then
    echo "$mount/$name exists already; left as it is"
else
    mkdir "$mount/$name"
    echo "created $mount/$name"
fi
echo "try: sudo target/release/clone_waitpid_cgroup_memory --cgroup $mount/$name"
