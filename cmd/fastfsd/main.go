package main

import (
	_ "github.com/cilium/ebpf"
	_ "github.com/klauspost/cpuid/v2"
	_ "golang.org/x/sys/unix"
)

func main() {}
