package vhostuser

// Device is the virtio device a Backend serves (virtio-fs in
// dataplane/virtiofs). vhostuser knows nothing of what the device does with
// its queues: it negotiates, validates and tracks ring state, and tells the
// device when a queue may run and when it must stop.
//
// All methods are called from the one session goroutine of a Backend, never
// concurrently with each other.
type Device interface {
	// Features returns the virtio feature bits the device offers: VERSION_1,
	// the ring features its queues implement (EVENT_IDX, INDIRECT_DESC) and
	// device-specific bits. The back-end adds VHOST_USER_F_PROTOCOL_FEATURES
	// itself and ignores that bit here.
	Features() uint64
	// QueueCount is the number of virtqueues (virtio-fs: 1 + request queues).
	QueueCount() int
	// MaxQueueSize is the largest ring size accepted, a power of two ≤ 32768.
	MaxQueueSize() int
	// Config returns the device's config space (GET_CONFIG reads a range of
	// it). The back-end does not modify or keep the slice.
	Config() []byte
	// StartQueue starts serving one queue. q's fds and memory stay valid,
	// and owned by the back-end, until StopQueue(q.Index) returns. A queue
	// is started at most once until it is stopped.
	StartQueue(q *Queue) error
	// StopQueue stops queue index and returns the index of the next
	// available entry the device would have processed (the ring's
	// last_avail). When it returns the device no longer reads or writes
	// guest memory for that queue, nor signals its call fd: requests in
	// flight have completed or been abandoned. Called only for a started
	// queue.
	StopQueue(index int) uint16
	// Reset drops the device's session state (virtio reset, disconnect).
	// Every queue is stopped when it is called.
	Reset()
}

// Queue is what a device needs to run one virtqueue: the split ring's
// geometry in guest-physical addresses (already validated: aligned, inside
// one memory region each), its first available index and the eventfds.
type Queue struct {
	Index int
	Size  int // power of two, ≤ Device.MaxQueueSize
	// Desc, Avail and Used are guest-physical addresses of the descriptor
	// table (16·Size bytes), available ring (6 + 2·Size) and used ring
	// (6 + 8·Size).
	Desc, Avail, Used uint64
	// NextAvail is where processing starts (SET_VRING_BASE / the last stop).
	NextAvail uint16
	// Features are the virtio features the driver acknowledged.
	Features uint64
	// Kick is the eventfd the driver's notifications arrive on; -1 means
	// the front-end asked for polling (no fd). Call is the eventfd to
	// signal the driver with, -1 for none. Err is signalled when the device
	// finds the ring broken, -1 for none. Owned by the back-end.
	Kick, Call, Err int
	// Memory is the guest memory to translate descriptor addresses with.
	Memory Memory
}
