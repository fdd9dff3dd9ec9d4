#!/bin/sh
# test/guest/correctness.sh DIR — file-system correctness checks on a
# mounted share (virtio-fs, 9p, FUSE…), for busybox sh inside the test
# guest (internal/vmtest) or any Linux shell. Each step prints
#   FASTFS-RESULT name=<step> status=PASS|FAIL|SKIP detail=<text>
# and the script exits 1 if any step failed.
#
# Environment: BIGDIR_FILES (default 5000), MD5_MB (default 64),
# FIO_SIZE (default 64M per job), FIO_RAND_BS (default
# 4k-64k: mixed sizes, ~2,000 writes per job, fast enough under TCG),
# SKIP="step step…" to skip steps a backend is known not to support yet,
# NAME_PREFIX (e.g. "tcp/") to tell two runs in one boot apart.
set -u
MNT=${1:?usage: correctness.sh MOUNTED_DIR}
W=$MNT/fastfs-correctness.$$
FIO_SIZE=${FIO_SIZE:-64M}
FIO_RAND_BS=${FIO_RAND_BS:-4k-64k}
SKIP=${SKIP:-}
FAILS=0

say() { echo "FASTFS-RESULT name=${NAME_PREFIX:-}$1 status=$2 detail=$3"; }

# run NAME FUNC: runs FUNC in a subshell; its last output line is the detail.
run() {
	name=$1
	shift
	case " $SKIP " in *" $name "*)
		say "$name" SKIP "skipped by SKIP"
		return
		;;
	esac
	t0=$(date +%s)
	out=$("$@" 2>&1)
	rc=$?
	d=$(printf '%s\n' "$out" | tail -n 1 | tr -d '\r')
	dt=$(($(date +%s) - t0))
	if [ $rc -eq 0 ]; then
		say "$name" PASS "${d:-ok} (${dt}s)"
	elif [ $rc -eq 77 ]; then
		say "$name" SKIP "$d"
	else
		printf '%s\n' "$out" | tail -n 20 | sed "s/^/  [$name] /"
		say "$name" FAIL "$d"
		FAILS=$((FAILS + 1))
	fi
}

die() { echo "$*"; exit 1; }
eq() { [ "$1" = "$2" ] || die "$3: got '$1', want '$2'"; }

t_create() {
	echo hello >"$W/a" || die "create failed"
	eq "$(cat "$W/a")" hello "read back"
	[ -f "$W/a" ] || die "not a regular file"
	eq "$(stat -c %s "$W/a")" 6 size
	echo "create+read ok"
}

t_write() {
	printf 'abcdefghij' >"$W/w"
	printf 'XY' | dd of="$W/w" bs=1 seek=3 conv=notrunc 2>/dev/null || die "pwrite failed"
	eq "$(cat "$W/w")" abcXYfghij "overwrite in the middle"
	dd if=/dev/zero of="$W/w" bs=1 count=1 seek=20 conv=notrunc 2>/dev/null
	eq "$(stat -c %s "$W/w")" 21 "size after write past EOF"
	eq "$(dd if="$W/w" bs=1 skip=10 count=10 2>/dev/null | od -An -tx1 | tr -d ' \n')" 00000000000000000000 "hole reads as zeros"
	echo "pwrite + hole ok"
}

t_append() {
	echo one >"$W/ap"
	echo two >>"$W/ap"
	echo three >>"$W/ap"
	eq "$(cat "$W/ap" | tr '\n' ,)" one,two,three, "appended content"
	echo "append ok"
}

t_truncate() {
	printf '0123456789' >"$W/t"
	truncate -s 4 "$W/t" || die "truncate shrink failed"
	eq "$(cat "$W/t")" 0123 "after shrink"
	truncate -s 100000 "$W/t" || die "truncate grow failed"
	eq "$(stat -c %s "$W/t")" 100000 "size after grow"
	eq "$(tail -c 4 "$W/t" | od -An -tx1 | tr -d ' \n')" 00000000 "grown tail is zeros"
	: >"$W/t"
	eq "$(stat -c %s "$W/t")" 0 "O_TRUNC"
	echo "truncate ok"
}

t_rename() {
	echo A >"$W/ra"
	mv "$W/ra" "$W/rb" || die "rename failed"
	[ ! -e "$W/ra" ] || die "source still exists"
	eq "$(cat "$W/rb")" A "renamed content"
	echo C >"$W/rc"
	mv -f "$W/rc" "$W/rb" || die "rename over existing failed"
	[ ! -e "$W/rc" ] || die "source still exists after rename-over"
	eq "$(cat "$W/rb")" C "content after rename over existing"
	mkdir -p "$W/rd1/sub" && echo x >"$W/rd1/sub/f"
	mv "$W/rd1" "$W/rd2" || die "directory rename failed"
	eq "$(cat "$W/rd2/sub/f")" x "file under renamed dir"
	mkdir "$W/rd3"
	mv "$W/rb" "$W/rd3/" || die "rename across directories failed"
	eq "$(cat "$W/rd3/rb")" C "moved file"
	echo "rename (plain, over existing, dir, cross-dir) ok"
}

t_hardlink() {
	echo L >"$W/h"
	eq "$(stat -c %h "$W/h")" 1 "nlink before"
	ln "$W/h" "$W/h2" || die "link failed"
	eq "$(stat -c %h "$W/h")" 2 "nlink after link"
	eq "$(stat -c %i "$W/h")" "$(stat -c %i "$W/h2")" "same inode"
	echo M >>"$W/h2"
	eq "$(cat "$W/h" | tr '\n' ,)" L,M, "write through the link"
	rm "$W/h2"
	eq "$(stat -c %h "$W/h")" 1 "nlink after unlink"
	echo "hard links + nlink ok"
}

t_symlink() {
	echo S >"$W/target"
	ln -s target "$W/sl" || die "symlink failed"
	eq "$(readlink "$W/sl")" target readlink
	[ -L "$W/sl" ] || die "not a symlink"
	eq "$(cat "$W/sl")" S "read through symlink"
	ln -s /nonexistent/dangling "$W/dl"
	eq "$(readlink "$W/dl")" /nonexistent/dangling "dangling readlink"
	[ ! -e "$W/dl" ] || die "dangling symlink resolves"
	echo "symlinks + readlink ok"
}

t_xattr() {
	command -v setfattr >/dev/null || { echo "no setfattr"; exit 77; }
	echo X >"$W/x"
	setfattr -n user.fastfs -v hello "$W/x" || die "setxattr failed"
	eq "$(getfattr --only-values -n user.fastfs "$W/x" 2>/dev/null)" hello getxattr
	setfattr -n user.second -v 2 "$W/x" || die "second setxattr failed"
	getfattr -d "$W/x" 2>/dev/null | grep -q 'user.second="2"' || die "listxattr misses user.second: $(getfattr -d "$W/x" 2>&1)"
	setfattr -x user.fastfs "$W/x" || die "removexattr failed"
	getfattr -n user.fastfs "$W/x" >/dev/null 2>&1 && die "xattr still there after remove"
	echo "set/get/list/remove xattr ok"
}

t_bigdir() {
	n=${BIGDIR_FILES:-5000}
	mkdir "$W/big" || die "mkdir failed"
	t0=$(date +%s)
	i=0
	while [ $i -lt $n ]; do
		: >"$W/big/f$i" || die "create f$i failed"
		i=$((i + 1))
	done
	t1=$(date +%s)
	eq "$(ls "$W/big" | wc -l)" $n "readdir count"
	t2=$(date +%s)
	set -- "$W"/big/f*
	eq $# $n "readdir count (shell glob)"
	t3=$(date +%s)
	eq "$(ls "$W/big/f$((n - 1))")" "$W/big/f$((n - 1))" "lookup of the last file"
	rm -r "$W/big" || die "deleting the directory failed"
	[ ! -e "$W/big" ] || die "directory still exists"
	t4=$(date +%s)
	echo "$n files: create $((t1 - t0))s, ls $((t2 - t1))s, glob $((t3 - t2))s, rm -r $((t4 - t3))s"
}

t_dirs() {
	mkdir -p "$W/d/e/f" || die "mkdir -p failed"
	[ -d "$W/d/e/f" ] || die "not a directory"
	rmdir "$W/d/e" 2>/dev/null && die "rmdir of a non-empty directory succeeded"
	rmdir "$W/d/e/f" "$W/d/e" "$W/d" || die "rmdir failed"
	[ ! -e "$W/d" ] || die "still exists"
	mkdir "$W/d2" && mkdir "$W/d2" 2>/dev/null && die "mkdir of an existing dir succeeded"
	echo "mkdir/rmdir ok"
}

t_perm() {
	echo P >"$W/p"
	chmod 640 "$W/p" || die "chmod failed"
	eq "$(stat -c %a "$W/p")" 640 mode
	chmod 4755 "$W/p"
	eq "$(stat -c %a "$W/p")" 4755 "setuid mode"
	chown 1234:5678 "$W/p" || die "chown failed"
	eq "$(stat -c %u:%g "$W/p")" 1234:5678 owner
	touch -d '2001-02-03 04:05:06' "$W/p" || die "utimes failed"
	eq "$(stat -c %Y "$W/p")" "$(date -d '2001-02-03 04:05:06' +%s)" mtime
	echo "chmod/chown/utimes ok"
}

direct_flag() {
	if dd if=/dev/zero of="$W/.direct" bs=4096 count=1 oflag=direct 2>/dev/null; then
		echo 1
	else
		echo 0
	fi
	rm -f "$W/.direct"
}

t_fio() {
	command -v fio >/dev/null || { echo "no fio"; exit 77; }
	rw=$1 bs=$2
	d=$(direct_flag)
	mkdir -p "$W/fio"
	case $bs in *-*) bsopt=--bsrange=$bs ;; *) bsopt=--bs=$bs ;; esac
	fio --name="verify-$rw" --directory="$W/fio" --rw="$rw" "$bsopt" --size="$FIO_SIZE" \
		--numjobs=2 --ioengine=psync --direct="$d" --verify=crc32c --verify_fatal=1 \
		--do_verify=1 --group_reporting --output-format=terse >"$W/fio.out" 2>&1 ||
		{ cat "$W/fio.out"; die "fio $rw verify failed"; }
	grep -qi 'verify' "$W/fio.out" && grep -i 'bad\|fail' "$W/fio.out" && die "verify errors"
	rm -rf "$W/fio"
	echo "2 jobs x $FIO_SIZE $rw bs=$bs direct=$d crc32c verified"
}

t_md5() {
	mb=${MD5_MB:-64}
	dd if=/dev/urandom of=/tmp/md5src bs=1M count="$mb" 2>/dev/null || die "no source"
	want=$(md5sum </tmp/md5src | cut -d' ' -f1)
	cp /tmp/md5src "$W/large" || die "copy to share failed"
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	got=$(md5sum <"$W/large" | cut -d' ' -f1)
	rm -f /tmp/md5src
	eq "$got" "$want" "md5 of ${mb} MiB written and read back"
	eq "$(stat -c %s "$W/large")" $((mb * 1048576)) size
	echo "md5 $got over $mb MiB"
}

t_unlink_open() {
	echo U >"$W/u"
	exec 3<"$W/u"
	rm "$W/u" || die "unlink failed"
	[ ! -e "$W/u" ] || die "still visible"
	eq "$(cat <&3)" U "read from unlinked open file"
	exec 3<&-
	echo "unlink while open ok"
}

mkdir -p "$W" || { say setup FAIL "cannot mkdir $W"; exit 1; }
run create t_create
run write t_write
run append t_append
run truncate t_truncate
run rename t_rename
run hardlink t_hardlink
run symlink t_symlink
run xattr t_xattr
run dirs t_dirs
run perm t_perm
run unlink-open t_unlink_open
run bigdir t_bigdir
run fio-seq-verify t_fio write 1M
run fio-rand-verify t_fio randwrite "$FIO_RAND_BS"
run md5 t_md5
rm -rf "$W" || { say cleanup FAIL "rm -rf $W failed"; FAILS=$((FAILS + 1)); }
echo "correctness: $FAILS failed"
[ $FAILS -eq 0 ]
