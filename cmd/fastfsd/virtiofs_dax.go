package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fastfsd/fastfsd/fastfs"
)

// parseCacheSize parses a DAX window size: a byte count with an optional
// binary suffix K, M, G or T (KiB, MiB… and k, m, g, t are accepted too).
func parseCacheSize(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 || n > (1<<63)>>shift {
		return 0, fmt.Errorf("--cache-size %q: want a size such as 512M, 1G or 4G", s)
	}
	n <<= shift
	if n%(2<<20) != 0 {
		return 0, fmt.Errorf("--cache-size %q: must be a multiple of 2M (the kernel maps 2 MiB at a time)", s)
	}
	return n, nil
}

// daxWindow is the DAX window's size to offer: 0 without --dax, else
// --cache-size or fastfs.DefaultDAXWindow.
func (c *virtiofsConfig) daxWindow() uint64 {
	switch {
	case !c.dax:
		return 0
	case c.cacheSize == 0:
		return fastfs.DefaultDAXWindow
	}
	return c.cacheSize
}
