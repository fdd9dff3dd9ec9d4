#!/bin/busybox sh
# /init of the fastfs test guest (internal/vmtest). Mounts the pseudo
# filesystems, loads the modules listed in /etc/fastfs/modules, brings up
# lo, mounts the shares in /etc/fastfs/mounts, runs /etc/fastfs/run.sh and
# reports on the console, then powers off. Protocol lines (parsed by the
# host): FASTFS-BOOT, FASTFS-READY, FASTFS-RESULT, FASTFS-FIO, FASTFS-KLOG,
# FASTFS-DONE rc=N (the final marker).
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run /mnt /root
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "FASTFS-BOOT uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"

result() { echo "FASTFS-RESULT name=$1 status=$2 detail=$3"; }

while read -r m; do
	[ -n "$m" ] || continue
	insmod "$m" || result "insmod:${m##*/}" FAIL "insmod $m failed"
done </etc/fastfs/modules

ip link set lo up || result lo FAIL "ip link set lo up failed"
LD_LIBRARY_PATH=$(cat /etc/fastfs/ldpath 2>/dev/null)
[ -f /etc/fastfs/ldpath.extra ] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(cat /etc/fastfs/ldpath.extra)
export LD_LIBRARY_PATH
[ -f /etc/fastfs/env ] && . /etc/fastfs/env

# mounts: FSTYPE SOURCE TARGET OPTIONS
if [ -f /etc/fastfs/mounts ]; then
	while read -r fstype src dst opts; do
		[ -n "$fstype" ] || continue
		mkdir -p "$dst"
		if mount -t "$fstype" -o "$opts" "$src" "$dst"; then
			result "mount:$src" PASS "$fstype on $dst ($opts)"
		else
			result "mount:$src" FAIL "mount -t $fstype -o $opts $src $dst failed"
		fi
	done </etc/fastfs/mounts
fi

echo "FASTFS-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
rc=0
if [ -f /etc/fastfs/run.sh ]; then
	cd /
	sh /etc/fastfs/run.sh
	rc=$?
	cd /
fi
[ "$rc" -eq 0 ] || result script FAIL "run.sh exited $rc"

# Unmount the shares so the server sees DESTROY / clunks before power-off.
if [ -f /etc/fastfs/mounts ]; then
	while read -r fstype src dst opts; do
		[ -n "$fstype" ] || continue
		umount "$dst" 2>/dev/null || umount -l "$dst" 2>/dev/null
	done </etc/fastfs/mounts
fi

# Kernel trouble the console's loglevel may have hidden.
if dmesg | grep -qE 'Oops|BUG:|WARNING: CPU|Kernel panic|general protection fault|Call Trace:|hung_task|blocked for more than'; then
	dmesg | sed 's/^/FASTFS-KLOG /'
	result kernel-log FAIL "oops/BUG/WARNING in dmesg"
fi
echo "FASTFS-DONE rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
