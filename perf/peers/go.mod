module github.com/fastfsd/fastfsd/perf/peers

go 1.26.0

tool (
	github.com/hanwen/go-fuse/v2/example/loopback
	github.com/hanwen/go-fuse/v2/example/virtiofs
)

require github.com/hanwen/go-fuse/v2 v2.12.1

require golang.org/x/sys v0.28.0 // indirect
