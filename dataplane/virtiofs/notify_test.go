package virtiofs

import (
	"errors"
	"strings"
	"testing"
)

// TestNotifyUnsupported: the device does not offer the notification
// queue, and every notification says the client does not support it.
func TestNotifyUnsupported(t *testing.T) {
	var d Device
	if d.Features()&FeatureNotification != 0 {
		t.Fatal("Features offers VIRTIO_FS_F_NOTIFICATION, which the device does not implement")
	}
	for name, err := range map[string]error{
		"InvalInode": d.NotifyInvalInode(2, 0, 0),
		"InvalEntry": d.NotifyInvalEntry(1, []byte("a"), false),
		"Delete":     d.NotifyDelete(1, 2, []byte("a")),
		"Store":      d.NotifyStore(2, 0, []byte("x")),
	} {
		if !errors.Is(err, ErrNotifyUnsupported) || !strings.Contains(err.Error(), "not supported by this client") {
			t.Errorf("%s: %v, want ErrNotifyUnsupported", name, err)
		}
	}
}
