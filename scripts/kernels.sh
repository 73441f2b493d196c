#!/usr/bin/env bash
# kernels.sh: the stock kernels the VM boots, fetched without installing anything.
#
# Usage: scripts/kernels.sh [--arch ARCH] COMMAND
#   scripts/kernels.sh list                 the kernel lines this host can test, one per line
#   scripts/kernels.sh default              the line booted when none is named
#   scripts/kernels.sh fetch LINE [LINE...] fetch (or refresh) the kernels of these lines
#   scripts/kernels.sh path LINE            the kernel image of LINE (fetched if missing): an
#                                           ELF where it could be extracted, with the original
#                                           bzImage beside it, named bzimage
#   scripts/kernels.sh version LINE         its release string, e.g. 6.12.117+deb13-amd64
#   scripts/kernels.sh busybox              a static busybox for the VM's initramfs
#
#   --arch ARCH   the architecture of the kernels and busybox, by its Debian name: amd64 or
#                 arm64 [default: this host's]. On Debian both are fetched, whatever the host
#                 runs; elsewhere only the host's own.
#
# On Debian the lines are Debian's own kernels, each the newest Debian ships for that
# release, its security and stable updates included (what a machine of that release runs once
# it is up to date):
#
#   bullseye        Debian 11, Linux 5.10
#   bookworm        Debian 12, Linux 6.1
#   trixie          Debian 13, Linux 6.12
#   sid             Debian unstable, the newest kernel Debian has
#   bookworm-point  Debian 12's point release without its updates (amd64 only): kept because
#                   it shows what the newer 6.1 does not, a kernel bug that cgroup_kill's
#                   step 5 teaches (a child born into a cgroup once killed is killed at birth)
#
# For arm64 bookworm, trixie and sid; Debian's arm64 images are uncompressed `Image`s, booted
# as they are (qemu -M virt).
#
# They come from the Debian archive this host's apt already uses, through a private apt
# configuration (its own sources, lists and cache under the cache directory): the archive's
# address is read from the host's own apt sources, only the suite names change, and nothing
# on the host is installed or reconfigured. On other distributions (Ubuntu) there is one line,
# `host`: the distribution's own current kernel, through the host's apt; the matrix of Debian
# kernels is not run there.
#
# A kernel is cached until it is VM_KERNEL_MAX_AGE days old (default 7); then its line is
# looked up again, and if the archive cannot be reached the cached kernel is used as it is.
#
# Environment: VM_CACHE   where downloads are kept [default: ~/.cache/clone-cgroup-vm]
# Exit status: 0 done; 2 the kernel of a line cannot be had (the message says why).
set -euo pipefail

cache=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clone-cgroup-vm}
max_age_days=${VM_KERNEL_MAX_AGE:-7}
debian_lines=(bullseye bookworm trixie sid)
# The suites a line's newest kernel may come from, and those of a point release alone.
suites_of() {
    case $1 in
        sid) echo sid ;;
        *-point) echo "${1%-point}" ;;
        *) echo "$1 $1-updates $1-security" ;;
    esac
}
case $(uname -m) in aarch64|arm64) host_arch=arm64 ;; *) host_arch=amd64 ;; esac
arch=$host_arch

die() { echo "kernels.sh: $*" >&2; exit 2; }
say() { echo "kernels.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

host_id() { (. /etc/os-release && echo "${ID:-unknown}"); }

# What the line is, in words.
describe() {
    case $1 in
        bullseye) echo "Debian 11" ;;
        bookworm) echo "Debian 12" ;;
        bookworm-point) echo "Debian 12, point release" ;;
        trixie) echo "Debian 13" ;;
        sid) echo "Debian unstable" ;;
        host) (. /etc/os-release && echo "${PRETTY_NAME:-this distribution}") ;;
        *) echo "$1" ;;
    esac
}

lines() {
    if [ "$(host_id)" = debian ]; then
        if [ "$arch" = arm64 ]; then printf '%s\n' bookworm trixie sid; else printf '%s\n' "${debian_lines[@]}" bookworm-point; fi
    elif [ "$arch" = "$host_arch" ]; then
        echo host
    fi
}

# Where line $1's kernel is kept: amd64's under kernels/LINE, as they always were.
kernel_dir() { if [ "$arch" = amd64 ]; then echo "$cache/kernels/$1"; else echo "$cache/kernels/$arch-$1"; fi; }

# --- the private apt configuration (Debian hosts) ----------------------------------------

apt_dir=$cache/apt
set_apt_dir() { if [ "$arch" = amd64 ]; then apt_dir=$cache/apt; else apt_dir=$cache/apt-$arch; fi; }

# The URIs of the Debian archive in the host's apt sources, as apt itself reads them: those
# that serve the host's own release (with $1 empty), or its security updates ($1 = -security).
host_archive_uris() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || return 1
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' 'Identifier: Packages' 2>/dev/null \
        | awk -v release="$codename${1:-}" '$2 == release && $3 == "deb" { print $1 }' | sort -u
}

private_apt_options() {
    printf '%s\n' -o "Dir::Etc::SourceList=$apt_dir/sources.list" \
    -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d" \
    -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d" \
    -o "Dir::State::Lists=$apt_dir/lists" \
    -o "Dir::Cache=$apt_dir/cache" \
    -o "Dir::State::status=/dev/null" \
    -o "APT::Architecture=$arch" \
    -o "APT::Architectures::=$arch" \
    -o "Acquire::Languages=none" \
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false" \
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false" \
    -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false" \
    -o "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false" \
    -o "APT::Sandbox::User=$(id -un)"
}

private_apt_get() { local o; mapfile -t o < <(private_apt_options); apt-get "${o[@]}" "$@"; }
private_apt_cache() { local o; mapfile -t o < <(private_apt_options); apt-cache "${o[@]}" "$@"; }

# Writes the private sources (the host's archive URIs, every Debian line's suite and its
# -updates; the host's security URIs, every line's -security) and downloads their lists.
private_apt_update() {
    local uris security_uris keyring line suites=() security_suites=()
    uris=$(host_archive_uris | tr '\n' ' ')
    [ -n "${uris// /}" ] || die "found no Debian archive in this host's apt sources (apt-get indextargets lists none for its release)"
    security_uris=$(host_archive_uris -security | tr '\n' ' ')
    for line in "${debian_lines[@]}"; do
        [ "$line" = sid ] && { suites+=(sid); continue; }
        suites+=("$line" "$line-updates")
        security_suites+=("$line-security")
    done
    mkdir -p "$apt_dir"/{sources.list.d,preferences.d,lists/partial,cache/archives/partial}
    : > "$apt_dir/sources.list"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    stanza() {
        echo "Types: deb"
        echo "URIs: $1"
        echo "Suites: $2"
        echo "Components: main"
        [ -r "$keyring" ] && echo "Signed-By: $keyring"
        echo
    }
    {
        stanza "$uris" "${suites[*]}"
        [ -z "${security_uris// /}" ] || stanza "$security_uris" "${security_suites[*]}"
    } > "$apt_dir/sources.list.d/debian.sources"
    [ -n "${security_uris// /}" ] || say "no security archive in this host's apt sources: each line's kernel is its release's, without security updates"
    private_apt_get -qq update >/dev/null 2>"$apt_dir/update.err"
}

# The newest version of package $1 that the suites of line $2 hold (apt-cache madison: one
# row per version and suite).
newest_in_line() {
    local package=$1 suites
    suites=" $(suites_of "$2") "
    private_apt_cache madison "$package" 2>/dev/null \
        | awk -F' [|] ' -v suites="$suites" '{
            split($3, where, " "); split(where[2], suite, "/")
            gsub(/ /, "", $2)
            if (index(suites, " " suite[1] " ")) print $2
          }' \
        | sort -V | tail -1
}

# --- fetching one line's kernel ------------------------------------------------------------

# The package that holds the image of $1's current kernel, found by following the
# metapackage's dependencies: linux-image-ARCH -> linux-image-<version>-ARCH, and in the
# newer packaging (Debian unstable) on to linux-binary-<version>-ARCH, which holds the image.
image_package() {
    local line=$1 meta depends image binary
    if [ "$line" = host ]; then
        for meta in linux-image-amd64 linux-image-generic; do
            apt-cache show "$meta" >/dev/null 2>&1 && break
        done
        depends() { apt-cache depends "$1" 2>/dev/null; }
    else
        local version
        version=$(newest_in_line "linux-image-$arch" "$line")
        [ -n "$version" ] || return 1
        meta=linux-image-$arch=$version
        depends() { private_apt_cache depends "$1" 2>/dev/null; }
    fi
    image=$(depends "$meta" | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
    [ -n "$image" ] || return 1
    [ "$line" = host ] || image=$image=$(newest_in_line "$image" "$line")
    binary=$(depends "$image" | sed -n 's/^ *Depends: \(linux-binary-[0-9][^ ]*\)$/\1/p' | head -1)
    if [ -n "$binary" ]; then
        [ "$line" = host ] && echo "$binary" || echo "$binary=$(newest_in_line "$binary" "$line")"
    else
        echo "$image"
    fi
}

# A bzImage carries the kernel compressed after its setup code; find the payload and
# decompress it into an ELF vmlinux, which qemu boots through PVH without decompressing
# it at every boot. Fails (and the bzImage is booted instead) where the format is unknown.
extract_vmlinux() {
    local image=$1 out=$2 offset
    for format in 'xz:\xfd7zXZ\x00:xz -dc' 'zstd:\x28\xb5\x2f\xfd:zstd -dcq' 'gzip:\x1f\x8b\x08:gzip -dc'; do
        local magic=${format#*:}; magic=${magic%%:*}
        local tool=${format##*:}
        command -v "${tool%% *}" >/dev/null || continue
        offset=$(LC_ALL=C grep -obUaP "$magic" "$image" | head -1 | cut -d: -f1) || true
        [ -n "$offset" ] || continue
        tail -c +$((offset + 1)) "$image" | $tool > "$out" 2>/dev/null || true
        if [ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" = '177ELF' ]; then return 0; fi
    done
    rm -f "$out"
    return 1
}

# A line's kernel as kept in its directory: all four files, written last to first.
complete() { [ -e "$1/kernel" ] && [ -e "$1/bzimage" ] && [ -e "$1/version" ] && [ -e "$1/package" ]; }
# Fresh: complete, younger than the maximum age, and looked up in the suites that line $2 is
# looked up in now (a kernel fetched from fewer suites is looked up again).
fresh() {
    complete "$1" && [ -z "$(find "$1/kernel" -mtime +"$max_age_days" 2>/dev/null)" ] \
        && { [ "$2" = host ] || [ "$(cat "$1/suites" 2>/dev/null)" = "$(suites_of "$2")" ]; }
}

updated=
# Fetches the kernel of line $1 unless a fresh one is cached. Returns 1 (after saying why)
# when it cannot be had.
fetch() {
    local line=$1 dir package tmp vmlinuz
    dir=$(kernel_dir "$1")
    fresh "$dir" "$line" && return 0
    if [ "$line" != host ] && [ -z "$updated" ]; then
        updated=1
        private_apt_update || say "apt-get update for the kernel lines failed: $(tail -1 "$apt_dir/update.err")"
    fi
    package=$(image_package "$line") || package=
    if [ -z "$package" ] && [ "$line" = host ]; then
        as_root apt-get update -qq >/dev/null 2>&1 || true
        package=$(image_package "$line") || package=
    fi
    if [ -z "$package" ]; then
        if complete "$dir"; then say "$line: no kernel package found; using the cached $(cat "$dir/version")"; return 0; fi
        say "$line ($(describe "$line")): no kernel package found in apt"; return 1
    fi
    if complete "$dir" && [ "$(cat "$dir/package")" = "$package" ]; then
        [ "$line" = host ] || suites_of "$line" > "$dir/suites"
        touch "$dir/kernel"; return 0
    fi
    say "$line: fetching $package"
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && if [ "$line" = host ]; then apt-get download "$package"; else private_apt_get download "$package"; fi) >/dev/null 2>&1; then
        rm -rf "$tmp"
        if complete "$dir"; then say "$line: download of $package failed; using the cached $(cat "$dir/version")"; return 0; fi
        say "$line ($(describe "$line")): apt-get download $package failed"; return 1
    fi
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    # The image is /boot/vmlinuz-<version>, or in the newer packaging
    # /usr/lib/modules/<version>/vmlinuz (with no config beside it).
    vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-* "$tmp"/x/usr/lib/modules/*/vmlinuz 2>/dev/null | head -1)
    if [ -z "$vmlinuz" ]; then
        rm -rf "$tmp"; say "$line: $package holds no vmlinuz"; return 1
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    echo "$package" > "$dir/package"
    [ "$line" = host ] || suites_of "$line" > "$dir/suites"
    case $vmlinuz in
        */boot/vmlinuz-*) basename "$vmlinuz" | sed 's/^vmlinuz-//' > "$dir/version" ;;
        *) basename "$(dirname "$vmlinuz")" > "$dir/version" ;;
    esac
    # The bzImage stays beside the ELF: a kernel built without PVH support cannot boot as one.
    cp "$vmlinuz" "$dir/bzimage"
    if [ "$arch" = amd64 ]; then
        extract_vmlinux "$vmlinuz" "$dir/kernel.new" || cp "$vmlinuz" "$dir/kernel.new"
    elif [ "$(head -c 2 "$vmlinuz" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
        # An arm64 Image, gzipped where the distribution ships it so (Ubuntu's).
        gzip -dc < "$vmlinuz" > "$dir/kernel.new"
    else
        cp "$vmlinuz" "$dir/kernel.new"
    fi
    mv "$dir/kernel.new" "$dir/kernel"
    rm -rf "$tmp"
}

busybox() {
    local out=$cache/busybox tmp found
    [ "$arch" = amd64 ] || out=$cache/busybox-$arch
    if [ ! -x "$out" ]; then
        say "fetching busybox-static"
        mkdir -p "$cache"
        tmp=$(mktemp -d)
        if [ "$(host_id)" = debian ]; then
            [ -n "$updated" ] || { updated=1; private_apt_update || true; }
            (cd "$tmp" && private_apt_get download busybox-static/bookworm >/dev/null 2>&1) \
                || { [ "$arch" = "$host_arch" ] && (cd "$tmp" && apt-get download busybox-static >/dev/null 2>&1); } \
                || die "apt-get download busybox-static ($arch) failed"
        else
            (cd "$tmp" && apt-get download "busybox-static:$arch" >/dev/null 2>&1) || die "apt-get download busybox-static:$arch failed"
        fi
        dpkg-deb -x "$tmp"/*.deb "$tmp/x"
        # /bin/busybox in bookworm's package, /usr/bin/busybox in newer ones.
        found=
        for candidate in "$tmp/x/bin/busybox" "$tmp/x/usr/bin/busybox"; do
            [ -x "$candidate" ] && { found=$candidate; break; }
        done
        [ -n "$found" ] || die "the busybox-static package ($arch) holds no busybox"
        cp "$found" "$out.new" && mv "$out.new" "$out"
        rm -rf "$tmp"
    fi
    echo "$out"
}

known_line() {
    local l
    for l in $(lines); do [ "$l" = "$1" ] && return 0; done
    die "unknown kernel line $1: this host's $arch lines are $(lines | tr '\n' ' ')"
}

main() {
    command -v apt-get >/dev/null || die "needs apt-get to fetch kernels (Debian or Ubuntu)"
    command -v dpkg-deb >/dev/null || die "needs dpkg-deb to unpack kernels"
    if [ "${1:-}" = --arch ]; then
        case ${2:-} in amd64|arm64) arch=$2 ;; *) die "--arch takes amd64 or arm64" ;; esac
        shift 2
    fi
    set_apt_dir
    local command=${1:-} line failed=0
    shift || true
    case $command in
        list) lines ;;
        # Debian's stable release: the kernel most Debian machines run.
        default) if [ "$(host_id)" = debian ]; then echo trixie; else echo host; fi ;;
        describe) describe "$1" ;;
        fetch)
            for line in "$@"; do known_line "$line"; fetch "$line" || failed=1; done
            [ "$failed" = 0 ] || exit 2 ;;
        path) known_line "$1"; fetch "$1" || exit 2; echo "$(kernel_dir "$1")/kernel" ;;
        version) known_line "$1"; fetch "$1" || exit 2; cat "$(kernel_dir "$1")/version" ;;
        busybox) busybox ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
        *) die "usage: scripts/kernels.sh [--arch ARCH] list | default | fetch LINE... | path LINE | version LINE | busybox  (see --help)" ;;
    esac
}

main "$@"
