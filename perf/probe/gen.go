package probe

// The BPF objects and their Go bindings are generated and committed, so that
// building fastfsd needs no clang. Regenerate with `make generate` (needs
// clang and libbpf-dev); CI checks the committed output is current.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" -no-strip fuseprobe bpf/fuse.c -- -I/usr/include/x86_64-linux-gnu
