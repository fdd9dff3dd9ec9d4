#!/bin/sh
# scripts/deps.sh — install everything fastfsd's tests need on a fresh
# Debian 12 (bookworm) machine, and unpack a guest kernel for the QEMU tests.
#
# Idempotent: when every package is installed and a guest kernel is cached it
# exits at once without touching the network (well under 2 s).
#
# The guest kernel is never installed onto the host's /boot: its .deb is
# fetched with `apt-get download` and unpacked with `dpkg-deb -x` into
#   $FASTFSD_CACHE/guest-kernel/<package-version>/   (boot/vmlinuz-*, lib/modules/*)
# and $FASTFSD_CACHE/guest-kernel/current points at it. internal/vmtest
# reads it from there (or from $FASTFSD_GUEST_KERNEL_DIR).
#
# Kernel choice: the newest linux-image-6.12.*-amd64 Debian offers (its
# virtio-fs driver has several request queues); on bookworm that is in
# bookworm-backports, which this script adds to apt's sources when missing.
# If no 6.12 package can be found it falls back to linux-image-amd64 (6.1)
# and says so. FASTFSD_GUEST_KERNEL_PKG=<package> picks one explicitly.
#
# Environment:
#   FASTFSD_CACHE             cache root (default /var/cache/fastfsd)
#   FASTFSD_GUEST_KERNEL_PKG  guest kernel package to unpack
#   FASTFSD_DEPS_REFRESH=1    re-resolve the newest kernel even if one is cached
set -eu

CACHE=${FASTFSD_CACHE:-/var/cache/fastfsd}
KDIR=$CACHE/guest-kernel
PKGS="qemu-system-x86 fio busybox-static fuse3 bpftool clang llvm libbpf-dev attr strace cpio zstd xz-utils kmod iproute2"

log() { echo "deps: $*" >&2; }
die() { echo "deps: error: $*" >&2; exit 1; }

command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 ||
	die "needs a Debian/Ubuntu machine (apt-get, dpkg); see the package list in this script"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo)"
	SUDO=sudo
fi

# apt with retries: other jobs on the machine may hold the dpkg lock.
apt_retry() {
	n=0
	while :; do
		if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 "$@"; then
			return 0
		fi
		n=$((n + 1))
		[ $n -ge 5 ] && die "apt-get $* failed $n times"
		log "apt-get $1 failed (lock held?), retry $n in 10 s"
		sleep 10
	done
}

UPDATED=0
apt_update() {
	[ $UPDATED -eq 1 ] && return 0
	apt_retry update -q
	UPDATED=1
}

# --- host packages -----------------------------------------------------------
missing=
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
	log "installing:$missing"
	apt_update
	# shellcheck disable=SC2086
	apt_retry install -y -q --no-install-recommends $missing
fi

# --- guest kernel --------------------------------------------------------------
kernel_ok() {
	d=$1
	[ -f "$d/.complete" ] && ls "$d"/boot/vmlinuz-* "$d"/lib/modules/*/modules.dep >/dev/null 2>&1
}

if [ -z "${FASTFSD_GUEST_KERNEL_PKG:-}" ] && [ "${FASTFSD_DEPS_REFRESH:-0}" != 1 ] &&
	[ -L "$KDIR/current" ] && kernel_ok "$KDIR/current"; then
	log "ok: packages present, guest kernel $(readlink "$KDIR/current")"
	exit 0
fi

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

# newest_612 prints the newest linux-image-6.12.*-amd64 package apt knows.
newest_612() {
	apt-cache search --names-only '^linux-image-6\.12\..*-amd64$' 2>/dev/null |
		awk '{print $1}' | grep -v -e '-dbg$' -e '-unsigned$' -e 'cloud' -e '-rt-' |
		sort -V | tail -n 1
}

pkg=${FASTFSD_GUEST_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(newest_612)
	if [ -z "$pkg" ] && [ "$codename" = bookworm ]; then
		if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
			log "adding bookworm-backports to apt sources (for the 6.12 guest kernel)"
			$SUDO tee /etc/apt/sources.list.d/fastfsd-backports.sources >/dev/null <<'EOF'
# Added by fastfsd scripts/deps.sh: the 6.12 guest kernel for the QEMU tests.
# Backports packages are never installed by default (pin priority 100).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		fi
		UPDATED=0
		apt_update || true
		pkg=$(newest_612)
	fi
	if [ -z "$pkg" ]; then
		apt_update
		pkg=$(newest_612)
	fi
	if [ -z "$pkg" ]; then
		log "WARNING: no linux-image-6.12.*-amd64 available; falling back to linux-image-amd64 (6.1: single-queue virtio-fs)"
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
		[ -n "$pkg" ] || die "cannot resolve linux-image-amd64"
	fi
fi

ver=$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate for $pkg"
dest=$KDIR/$pkg-$ver
if ! kernel_ok "$dest"; then
	log "fetching guest kernel $pkg $ver into $dest"
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt-get download runs as _apt
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get -o APT::Sandbox::User=root download "$pkg=$ver") || { apt_update; (cd "$tmp" && apt-get -o APT::Sandbox::User=root download "$pkg=$ver"); }
	$SUDO rm -rf "$dest"
	$SUDO mkdir -p "$dest"
	$SUDO dpkg-deb -x "$tmp"/*.deb "$dest"
	# usr-merged packages put modules under usr/lib/modules; give one path.
	if [ ! -d "$dest/lib/modules" ] && [ -d "$dest/usr/lib/modules" ]; then
		$SUDO ln -s usr/lib "$dest/lib"
	fi
	ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1 || die "$pkg has no boot/vmlinuz-*"
	# The package ships no modules.dep (postinst runs depmod): make one.
	for m in "$dest"/lib/modules/*/; do
		$SUDO depmod -b "$dest" "$(basename "$m")"
	done
	echo "$pkg $ver" | $SUDO tee "$dest/.complete" >/dev/null
fi
$SUDO ln -sfn "$(basename "$dest")" "$KDIR/current"
log "ok: guest kernel $KDIR/current -> $(basename "$dest")"
