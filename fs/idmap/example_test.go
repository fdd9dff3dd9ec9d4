package idmap_test

import (
	"fmt"

	"github.com/fastfsd/fastfsd/fs/idmap"
)

// A guest's IDs 0–65535 stored on the host as 100000–165535, as
// virtiofsd's --translate-uid=map:0:100000:65536 does; Wrap(fsys, uids,
// gids) applies such maps to every request and reply of a filesystem.
func Example() {
	e, err := idmap.ParseTranslate("map:0:100000:65536")
	if err != nil {
		fmt.Println(err)
		return
	}
	uids, err := idmap.New([]idmap.Entry{e})
	if err != nil {
		fmt.Println(err)
		return
	}
	host, ok := uids.ToHost(1000)
	fmt.Println("guest 1000 is host", host, ok)
	fmt.Println("host 100000 is guest", uids.ToGuest(100000))
	fmt.Println("host 5 is guest", uids.ToGuest(5), "(no range covers it)")

	// As a user namespace does (--uid-map): IDs outside the map are
	// confined instead of passing through.
	confined, _ := idmap.New(idmap.Confine([]idmap.Entry{e}))
	_, ok = confined.ToHost(70000)
	fmt.Println("guest 70000 usable:", ok, "; host 5 shown as", confined.ToGuest(5))
	// Output:
	// guest 1000 is host 101000 true
	// host 100000 is guest 0
	// host 5 is guest 5 (no range covers it)
	// guest 70000 usable: false ; host 5 shown as 65534
}
