package virtiofs

import "errors"

// ErrNotifyUnsupported is what every cache notification on a virtio-fs
// device returns. The virtio-fs spec carries them on a notification queue
// that exists only when the driver negotiates VIRTIO_FS_F_NOTIFICATION,
// and Linux's driver never does (fs/fuse/virtio_fs.c offers an empty
// feature table), so no guest could receive one; the device does not
// offer the feature (Features), and does not pretend to send.
var ErrNotifyUnsupported = errors.New("virtiofs: cache notifications are not supported by this client: the driver did not negotiate the notification queue (VIRTIO_FS_F_NOTIFICATION), which Linux's virtio-fs driver never does; the guest sees host changes only when its cache times out (cache=auto) or with cache=never")

// FeatureNotification is VIRTIO_FS_F_NOTIFICATION (feature bit 0), which
// Features does not offer.
const FeatureNotification = 1 << 0

// NotifyInvalInode would drop the guest's cached attributes and data of
// ino: ErrNotifyUnsupported (see there).
func (d *Device) NotifyInvalInode(ino uint64, off, length int64) error {
	return ErrNotifyUnsupported
}

// NotifyInvalEntry would drop the guest's cached entry name in parent:
// ErrNotifyUnsupported.
func (d *Device) NotifyInvalEntry(parent uint64, name []byte, expireOnly bool) error {
	return ErrNotifyUnsupported
}

// NotifyDelete would tell the guest that name in parent is gone:
// ErrNotifyUnsupported.
func (d *Device) NotifyDelete(parent, child uint64, name []byte) error {
	return ErrNotifyUnsupported
}

// NotifyStore would put data in the guest's page cache:
// ErrNotifyUnsupported.
func (d *Device) NotifyStore(ino uint64, off int64, data []byte) error {
	return ErrNotifyUnsupported
}
