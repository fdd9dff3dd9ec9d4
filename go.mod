module github.com/fastfsd/fastfsd

go 1.26.0

require (
	github.com/cilium/ebpf v0.22.0
	github.com/google/pprof v0.0.0-20260906184651-6331bc6350fe
	github.com/hugelgupf/p9 v0.3.0
	github.com/klauspost/cpuid/v2 v2.4.2
	golang.org/x/sys v0.49.0
)

require github.com/u-root/uio v0.0.0-20230305220412-3e8cd9d6bf63 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go
