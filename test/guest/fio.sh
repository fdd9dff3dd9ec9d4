#!/bin/sh
# test/guest/fio.sh DIR LABEL — the guest benchmark suite on a mounted
# share. Prints per job, the first line just before fio starts, the
# second when fio has set up its files and starts its timed phase (fio's
# exec_prerun, once per fio job thread), the last after fio exited (the
# host reads each back-end's CPU time at these lines):
#   FASTFS-JOB name=LABEL/JOB
#   FASTFS-TIMED name=LABEL/JOB
#   FASTFS-FIO name=LABEL/JOB {fio JSON on one line}
# Jobs: seqread / seqwrite (1 MiB, direct=1, 2 jobs), randread (4 KiB,
# direct=1, 2 jobs), create (2,000 files, fio's filecreate engine), stat
# (filestat engine, on 2,000 files of its own, stat.0.N, which fio lays
# out with 4 KiB of data each before its timed phase). Under TCG
# compare backends only by ratio within one boot (see
# /work/shared/FINDINGS.md).
#
# Environment: FIO_RUNTIME (seconds per timed job, default 8),
# FIO_SIZE (file size per job, default 64M), FIO_FILES (default 2000).
set -u
DIR=${1:?usage: fio.sh DIR LABEL}
case $DIR in /*) ;; *) DIR=$(pwd)/$DIR ;; esac # fio runs in /tmp
LABEL=${2:-fs}
RT=${FIO_RUNTIME:-8}
SIZE=${FIO_SIZE:-64M}
NF=${FIO_FILES:-2000}
W=$DIR/fastfs-fio.$$
mkdir -p "$W" || { echo "FASTFS-RESULT name=$LABEL/fio status=FAIL detail=cannot mkdir $W"; exit 1; }

direct=1
dd if=/dev/zero of="$W/.d" bs=4096 count=1 oflag=direct 2>/dev/null || direct=0
rm -f "$W/.d"

FAILS=0
job() {
	name=$1
	shift
	# fio's stderr goes to the guest's own /tmp, not the share, so
	# between the markers only fio touches the share.
	# exec_prerun's own output goes to NAME.prerun.txt in fio's working
	# directory (the guest's /tmp); the marker goes to the console.
	echo "FASTFS-JOB name=$LABEL/$name"
	out=$(cd /tmp && fio --output-format=json --name="$name" --directory="$W" \
		--exec_prerun="sh -c 'echo FASTFS-TIMED name=$LABEL/$name >/dev/console'" "$@" 2>/tmp/fio.err)
	rc=$?
	rm -f "/tmp/$name.prerun.txt"
	if [ $rc -ne 0 ] || [ -z "$out" ]; then
		echo "FASTFS-RESULT name=$LABEL/$name status=FAIL detail=fio: $(tr '\n' ' ' </tmp/fio.err | cut -c1-300)"
		FAILS=$((FAILS + 1))
		return
	fi
	# fio may print notes before the JSON; keep from the first "{".
	echo "FASTFS-FIO name=$LABEL/$name $(printf '%s\n' "$out" | sed -n '/^{/,$p' | tr -d '\n')"
	echo "FASTFS-RESULT name=$LABEL/$name status=PASS detail=direct=$direct"
}

common="--ioengine=psync --numjobs=2 --group_reporting --size=$SIZE --invalidate=0"
# shellcheck disable=SC2086
job seqwrite $common --rw=write --bs=1M --direct=$direct --time_based --runtime="$RT" --filename_format='seq.$jobnum'
# shellcheck disable=SC2086
job seqread $common --rw=read --bs=1M --direct=$direct --time_based --runtime="$RT" --filename_format='seq.$jobnum'
# shellcheck disable=SC2086
job randread $common --rw=randread --bs=4k --direct=$direct --time_based --runtime="$RT" --filename_format='seq.$jobnum'
rm -f "$W"/seq.*
mkdir -p "$W/files"
job create --directory="$W/files" --ioengine=filecreate --fallocate=none --filesize=4k --bs=4k --openfiles=1 --nrfiles="$NF" --rw=write
job stat --directory="$W/files" --ioengine=filestat --filesize=4k --bs=4k --openfiles=1 --nrfiles="$NF" --rw=read
rm -rf "$W"
[ $FAILS -eq 0 ]
