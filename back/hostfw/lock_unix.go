//go:build unix

package hostfw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockWait bounds how long Ensure waits for another process's turn: a
// turn is a few dozen iptables commands.
const lockWait = time.Minute

// lockFile takes an exclusive flock on path (created if missing), waiting
// at most lockWait and ctx; the kernel drops it if the process dies. A
// process that cannot create path (/run is root's) uses the same name in
// the temporary directory. The file is opened read-only, which flock needs
// no more than, and readable by all, so Backs of different users share it.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		f, err = os.OpenFile(filepath.Join(os.TempDir(), filepath.Base(path)), os.O_RDONLY|os.O_CREATE, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("lock between processes: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	for {
		// Non-blocking, polled: a blocking flock would not end with ctx.
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
