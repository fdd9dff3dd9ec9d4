package p9

import "testing"

// TestOptionsBufferBound: the bound known from the options before a
// server exists is the server's, defaults applied (fastfsd 9p logs it
// before serving): 64 connections × ((16+4) × 2 × 1 MiB + 16 MiB) =
// 3.5 GiB with the defaults, as its usage text says.
func TestOptionsBufferBound(t *testing.T) {
	var nilOpts *Options
	if got, want := nilOpts.BufferBound(), uint64(64*((16+4)*2*(1<<20)+16<<20)); got != want {
		t.Errorf("defaults: BufferBound %d, want %d (3.5 GiB)", got, want)
	}
	for _, o := range []*Options{nil, {}, {MaxConns: 3, MaxRequests: 2, MaxMsize: 8192}, {MaxMsize: 1}} {
		if got, want := o.BufferBound(), NewServer(nil, o).BufferBound(); got != want {
			t.Errorf("%+v: Options.BufferBound %d, Server.BufferBound %d", o, got, want)
		}
	}
	o := Options{MaxConns: 3, MaxRequests: 2, MaxMsize: 8192}
	if got, want := o.BufferBound(), uint64(3*((2+readAhead)*2*8192+xattrBudget)); got != want {
		t.Errorf("%+v: BufferBound %d, want %d", o, got, want)
	}
}
