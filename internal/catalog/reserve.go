package catalog

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultReserve is the space the SQLite catalog keeps allocated next to
// its database for when the file system holding it is full.
const DefaultReserve = 8 << 20

// reserve is a file of preallocated blocks beside the catalog. The catalog
// usually shares its file system with the store, and when users fill that
// up the catalog must still record what it is asked to — most of all the
// exporter's claims and completions, the only way space comes back once
// exported files are released. A commit that fails because the disk is
// full drops the reserve and is retried once in the space it freed
// (invariant 1 in docs/invariants.md: export resumes after a full disk).
// The reserve is made again, at most once a minute, once there is room.
type reserve struct {
	path string
	size int64
	log  *slog.Logger

	mu      sync.Mutex
	have    bool
	tried   time.Time
	dropped int // times the reserve was given up (tests, logs)
}

func newReserve(path string, size int64, log *slog.Logger) *reserve {
	r := &reserve{path: path, size: size, log: log}
	if size > 0 {
		r.refill(time.Time{})
	}
	return r
}

// refill (re)creates the reserve if it is missing and the last attempt was
// over a minute before now (zero now: at once).
func (r *reserve) refill(now time.Time) {
	if r.size <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.have || (!now.IsZero() && now.Sub(r.tried) < time.Minute) {
		return
	}
	r.tried = now
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, r.size); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			// No fallocate (some network file systems): write the blocks.
			err = writeZeros(f, r.size)
		}
		if err != nil {
			_ = os.Remove(r.path) // no half reserve: it would only mislead
			return
		}
	}
	r.have = true
}

func writeZeros(f *os.File, n int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), n-off)], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// release frees the reserve's space; it reports whether there was any.
func (r *reserve) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.have {
		return false
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false
	}
	r.have = false
	r.dropped++
	r.log.Warn("catalog: the disk is full; using the catalog's reserved space so that exports go on — free space on the store (ferry hsm release, or delete files)", "reserve", r.path, "bytes", r.size)
	return true
}

// diskFull reports whether err is SQLite's SQLITE_FULL (or ENOSPC).
func diskFull(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, unix.ENOSPC) || strings.Contains(err.Error(), "database or disk is full")
}
