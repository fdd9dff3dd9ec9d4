// Package ringtest is the driver (guest) side of a virtio split virtqueue,
// in Go, over the same guest memory a ring.Queue serves: it adds direct and
// indirect chains, publishes avail.idx, reads the used ring and decides
// kicks as a guest would, and it can forge hostile rings (raw descriptors,
// avail entries and indices). It is for tests, fuzzing, benchmarks and the
// vhost-user test front-end; it validates little and trusts the device.
//
// A Driver is owned by one goroutine (the "guest"); the device side may
// run concurrently in another. They share nothing but guest memory, so
// over a heap-backed region (mem.NewHeapRegion) the race detector checks the
// ring's memory ordering.
//
// Create the Driver before the ring.Queue: NewDriver initialises the rings
// and ring.New reads used.idx. Driver.Mem panics on an address outside
// guest memory: the driver is the test's own code, not a guest to defend
// against.
package ringtest
