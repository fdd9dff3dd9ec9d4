package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
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

// enableDAX gives the device its DAX window when --dax was asked for.
func enableDAX(c *virtiofsConfig, dev *virtiofs.Device, log *slog.Logger) error {
	if !c.dax {
		return nil
	}
	size := c.cacheSize
	if size == 0 {
		size = virtiofs.DefaultCacheSize
	}
	if err := dev.EnableDAX(size); err != nil {
		return fmt.Errorf("--dax: %w", err)
	}
	log.Info("virtiofs: DAX window offered (vhost-user SHMEM); a front-end without SHMEM gets none and the guest mounts without DAX",
		"cache-size", size)
	return nil
}
