// Package fusemount is the /dev/fuse integration test: it builds
// ./cmd/fastfsd, mounts a scratch export with "fastfsd mount --allow-other"
// in each cache configuration, and runs the conformance suite
// (internal/posixtest) through the mount against a native twin directory on
// the same filesystem as the export — including the non-root section, the
// escape race, fio with crc32c verification and a tar round trip.
//
// It has no non-test code. The tests need root, /dev/fuse, the go tool,
// fio and tar; they skip naming what is missing (fail under CI=true). Each
// mount lives in t.TempDir(), is unmounted in t.Cleanup, and the cleanup
// fails the test if fastfsd did not exit cleanly or left the mount behind.
//
// Run: go test -count=1 -timeout 30m ./test/fusemount/
// (-short shrinks the fio and tar workloads).
package fusemount
