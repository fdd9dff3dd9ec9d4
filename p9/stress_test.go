package p9

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	hp9 "github.com/hugelgupf/p9/p9"
)

// TestConcurrentClients: several connections, several goroutines each,
// issuing requests concurrently (the client multiplexes them by tag) on
// separate and shared fids; afterwards every lookup and handle is back.
func TestConcurrentClients(t *testing.T) {
	m := newMemFS(t.TempDir())
	sock, _ := startServer(t, m, &Options{MaxRequests: 4})
	const conns, workers, iters = 3, 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, conns*workers)
	for ci := range conns {
		c, nc := dialClient(t, sock, 16<<10)
		root, err := c.Attach("")
		if err != nil {
			t.Fatal(err)
		}
		// One shared open file per connection, read concurrently.
		_, shared, _ := root.Walk(nil)
		shared, _, _, err = shared.Create(fmt.Sprintf("shared%d", ci), hp9.ReadWrite, 0644, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		content := bytes.Repeat([]byte{byte('A' + ci)}, 40000)
		if _, err := shared.WriteAt(content, 0); err != nil {
			t.Fatal(err)
		}
		var cwg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			cwg.Add(1)
			go func() {
				defer wg.Done()
				defer cwg.Done()
				errs <- stressWorker(root, shared, content, ci, w, iters)
			}()
		}
		go func() {
			cwg.Wait()
			shared.Close()
			c.Close()
			nc.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	waitOutstanding(t, m)
}

func stressWorker(root, shared hp9.File, content []byte, ci, w, iters int) error {
	buf := make([]byte, 50000)
	for i := range iters {
		name := fmt.Sprintf("f-%d-%d-%d", ci, w, i)
		_, f, err := root.Walk(nil)
		if err != nil {
			return err
		}
		f, _, _, err = f.Create(name, hp9.ReadWrite, 0644, 0, 0)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		data := bytes.Repeat([]byte(name), 1+i*50)
		if _, err := f.WriteAt(data, 0); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		n, err := f.ReadAt(buf[:len(data)], 0)
		if n != len(data) || !bytes.Equal(buf[:n], data) {
			return fmt.Errorf("read %s: %d %v", name, n, err)
		}
		f.Close()
		off := int64((i * 997) % 30000)
		n, err = shared.ReadAt(buf[:10000], off)
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], content[off:off+int64(n)]) {
			return fmt.Errorf("shared read at %d: %d %v", off, n, err)
		}
		_, wf, _, _, err := root.WalkGetAttr([]string{name})
		if err != nil {
			return fmt.Errorf("walk %s: %w", name, err)
		}
		wf.Close()
		if i%3 == 0 {
			if err := root.RenameAt(name, root, name+".r"); err != nil {
				return fmt.Errorf("rename %s: %w", name, err)
			}
			name += ".r"
		}
		if err := root.UnlinkAt(name, 0); err != nil {
			return fmt.Errorf("unlink %s: %w", name, err)
		}
	}
	return nil
}
