package vhostuser

// This file holds the vhost-user wire constants, spelled as in QEMU's
// docs/interop/vhost-user.rst. Everything else in the package uses MixedCaps.

// Request is a vhost-user front-end → back-end message id (header field
// "request").
type Request uint32

// Front-end message ids (vhost-user.rst "Front-end message types").
const (
	VHOST_USER_GET_FEATURES          Request = 1  // reply u64
	VHOST_USER_SET_FEATURES          Request = 2  // u64
	VHOST_USER_SET_OWNER             Request = 3  // no payload
	VHOST_USER_RESET_OWNER           Request = 4  // deprecated, no payload
	VHOST_USER_SET_MEM_TABLE         Request = 5  // memory table + one fd per region
	VHOST_USER_SET_LOG_BASE          Request = 6  // log; fd with LOG_SHMFD
	VHOST_USER_SET_LOG_FD            Request = 7  // eventfd
	VHOST_USER_SET_VRING_NUM         Request = 8  // vring state
	VHOST_USER_SET_VRING_ADDR        Request = 9  // vring address (40 bytes)
	VHOST_USER_SET_VRING_BASE        Request = 10 // vring state
	VHOST_USER_GET_VRING_BASE        Request = 11 // vring state; reply vring state; stops the ring
	VHOST_USER_SET_VRING_KICK        Request = 12 // u64 index|flags + eventfd unless bit 8
	VHOST_USER_SET_VRING_CALL        Request = 13 // as KICK
	VHOST_USER_SET_VRING_ERR         Request = 14 // as KICK
	VHOST_USER_GET_PROTOCOL_FEATURES Request = 15 // reply u64
	VHOST_USER_SET_PROTOCOL_FEATURES Request = 16 // u64
	VHOST_USER_GET_QUEUE_NUM         Request = 17 // reply u64 (MQ)
	VHOST_USER_SET_VRING_ENABLE      Request = 18 // vring state (num 0/1)
	VHOST_USER_SEND_RARP             Request = 19 // net only
	VHOST_USER_NET_SET_MTU           Request = 20 // net only
	VHOST_USER_SET_BACKEND_REQ_FD    Request = 21 // socket fd (old name SET_SLAVE_REQ_FD)
	VHOST_USER_IOTLB_MSG             Request = 22 // IOTLB; reply u64
	VHOST_USER_SET_VRING_ENDIAN      Request = 23 // legacy rings only
	VHOST_USER_GET_CONFIG            Request = 24 // config; reply config
	VHOST_USER_SET_CONFIG            Request = 25 // config
	VHOST_USER_CREATE_CRYPTO_SESSION Request = 26
	VHOST_USER_CLOSE_CRYPTO_SESSION  Request = 27
	VHOST_USER_POSTCOPY_ADVISE       Request = 28
	VHOST_USER_POSTCOPY_LISTEN       Request = 29
	VHOST_USER_POSTCOPY_END          Request = 30
	VHOST_USER_GET_INFLIGHT_FD       Request = 31
	VHOST_USER_SET_INFLIGHT_FD       Request = 32
	VHOST_USER_GPU_SET_SOCKET        Request = 33
	VHOST_USER_RESET_DEVICE          Request = 34 // no payload
	VHOST_USER_VRING_KICK            Request = 35 // in-band kick
	VHOST_USER_GET_MAX_MEM_SLOTS     Request = 36 // reply u64
	VHOST_USER_ADD_MEM_REG           Request = 37 // single region + exactly one fd
	VHOST_USER_REM_MEM_REG           Request = 38 // single region
	VHOST_USER_SET_STATUS            Request = 39 // u64 virtio status
	VHOST_USER_GET_STATUS            Request = 40 // reply u64
	VHOST_USER_GET_SHARED_OBJECT     Request = 41
	VHOST_USER_SET_DEVICE_STATE_FD   Request = 42
	VHOST_USER_CHECK_DEVICE_STATE    Request = 43
	VHOST_USER_GET_SHMEM_CONFIG      Request = 44 // reply: VIRTIO Shared Memory Region sizes (shmem.go)
)

// Header flag bits (vhost-user.rst "Header").
const (
	VHOST_USER_VERSION_MASK = 0x3 // bits 0-1: protocol version
	VHOST_USER_VERSION      = 0x1 // the only version
	VHOST_USER_REPLY_MASK   = 0x4 // bit 2: this message is a reply
	VHOST_USER_NEED_REPLY   = 0x8 // bit 3: REPLY_ACK requested
)

// Virtio and vhost feature bits (GET/SET_FEATURES).
const (
	VIRTIO_F_NOTIFY_ON_EMPTY            = 24
	VHOST_F_LOG_ALL                     = 26
	VIRTIO_F_ANY_LAYOUT                 = 27
	VIRTIO_RING_F_INDIRECT_DESC         = 28
	VIRTIO_RING_F_EVENT_IDX             = 29
	VHOST_USER_F_PROTOCOL_FEATURES      = 30
	VIRTIO_F_VERSION_1                  = 32
	VIRTIO_F_ACCESS_PLATFORM            = 33
	VIRTIO_F_RING_PACKED                = 34
	VIRTIO_F_IN_ORDER                   = 35
	VIRTIO_F_NOTIFICATION_DATA          = 38
	VIRTIO_F_RING_RESET                 = 40
	VHOST_USER_PROTOCOL_F_MQ            = 0
	VHOST_USER_PROTOCOL_F_LOG_SHMFD     = 1
	VHOST_USER_PROTOCOL_F_RARP          = 2
	VHOST_USER_PROTOCOL_F_REPLY_ACK     = 3
	VHOST_USER_PROTOCOL_F_NET_MTU       = 4
	VHOST_USER_PROTOCOL_F_BACKEND_REQ   = 5
	VHOST_USER_PROTOCOL_F_CROSS_ENDIAN  = 6
	VHOST_USER_PROTOCOL_F_CRYPTO        = 7
	VHOST_USER_PROTOCOL_F_PAGEFAULT     = 8
	VHOST_USER_PROTOCOL_F_CONFIG        = 9
	VHOST_USER_PROTOCOL_F_BACKEND_FD    = 10 // BACKEND_SEND_FD
	VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11
	VHOST_USER_PROTOCOL_F_INFLIGHT      = 12 // INFLIGHT_SHMFD
	VHOST_USER_PROTOCOL_F_RESET_DEVICE  = 13
	VHOST_USER_PROTOCOL_F_INBAND_NOTIF  = 14 // INBAND_NOTIFICATIONS
	VHOST_USER_PROTOCOL_F_MEM_SLOTS     = 15 // CONFIGURE_MEM_SLOTS
	VHOST_USER_PROTOCOL_F_STATUS        = 16
)

// Payload sizes, in bytes, of the fixed layouts (vhost-user.rst "Message
// types"); a message of a type with a fixed layout must carry exactly this
// many bytes.
const (
	headerSize      = 12 // request u32, flags u32, size u32
	u64Size         = 8
	vringStateSize  = 8  // index u32, num u32
	vringAddrSize   = 40 // index u32, flags u32, desc u64, used u64, avail u64, log u64
	regionSize      = 32 // gpa u64, size u64, uva u64, mmap_offset u64
	memTableHdrSize = 8  // nregions u32, padding u32
	memRegMsgSize   = 8 + regionSize
	logSize         = 16 // mmap_size u64, mmap_offset u64
	configHdrSize   = 12 // offset u32, size u32, flags u32

	// maxPayload bounds what we read for one message. The largest message a
	// front-end sends a vhost-user-fs back-end is SET_CONFIG with 256 bytes
	// of config (268) or SET_MEM_TABLE with 8 regions (264); 4 KiB leaves
	// room for messages we do not know and still bounds a hostile size.
	maxPayload = 4096
	// maxConfigSize is the largest config space GET/SET_CONFIG may carry
	// (QEMU's VHOST_USER_MAX_CONFIG_SIZE).
	maxConfigSize = 256
	// maxFds is the most fds one message may carry (QEMU's
	// VHOST_MEMORY_BASELINE_NREGIONS, also VHOST_USER_MAX_RAM_SLOTS for one
	// SET_MEM_TABLE).
	maxFds = 8
	// baselineRegions is the most regions SET_MEM_TABLE may carry.
	baselineRegions = 8

	// vringNoFd in SET_VRING_KICK/CALL/ERR's u64 says no fd is attached.
	vringNoFd    = 1 << 8
	vringIdxMask = 0xff

	// maxQueueSize is the largest split virtqueue (virtio 1.x).
	maxQueueSize = 32768
)

// Virtio device status bits (SET_STATUS).
const (
	VIRTIO_CONFIG_S_ACKNOWLEDGE = 1
	VIRTIO_CONFIG_S_DRIVER      = 2
	VIRTIO_CONFIG_S_DRIVER_OK   = 4
	VIRTIO_CONFIG_S_FEATURES_OK = 8
	VIRTIO_CONFIG_S_FAILED      = 0x80
)

var requestNames = [...]string{
	1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER",
	5: "SET_MEM_TABLE", 6: "SET_LOG_BASE", 7: "SET_LOG_FD", 8: "SET_VRING_NUM",
	9: "SET_VRING_ADDR", 10: "SET_VRING_BASE", 11: "GET_VRING_BASE",
	12: "SET_VRING_KICK", 13: "SET_VRING_CALL", 14: "SET_VRING_ERR",
	15: "GET_PROTOCOL_FEATURES", 16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM",
	18: "SET_VRING_ENABLE", 19: "SEND_RARP", 20: "NET_SET_MTU",
	21: "SET_BACKEND_REQ_FD", 22: "IOTLB_MSG", 23: "SET_VRING_ENDIAN",
	24: "GET_CONFIG", 25: "SET_CONFIG", 26: "CREATE_CRYPTO_SESSION",
	27: "CLOSE_CRYPTO_SESSION", 28: "POSTCOPY_ADVISE", 29: "POSTCOPY_LISTEN",
	30: "POSTCOPY_END", 31: "GET_INFLIGHT_FD", 32: "SET_INFLIGHT_FD",
	33: "GPU_SET_SOCKET", 34: "RESET_DEVICE", 35: "VRING_KICK",
	36: "GET_MAX_MEM_SLOTS", 37: "ADD_MEM_REG", 38: "REM_MEM_REG",
	39: "SET_STATUS", 40: "GET_STATUS", 41: "GET_SHARED_OBJECT",
	42: "SET_DEVICE_STATE_FD", 43: "CHECK_DEVICE_STATE", 44: "GET_SHMEM_CONFIG",
}

// String returns the message name without the VHOST_USER_ prefix.
func (r Request) String() string {
	if int(r) < len(requestNames) && requestNames[r] != "" {
		return requestNames[r]
	}
	return "REQUEST_" + itoa(uint64(r))
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
