package catalog

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
//
// The space the reserve frees is the catalog's alone: while it is given
// up, room refuses the store's other writers (the mount's writes, the
// importer's fetches) with ENOSPC until as much as the reserve is free
// again and the reserve is back. Otherwise a writer filling the disk takes
// the freed space at once and the catalog's next commit finds the disk
// full with no reserve left: exports stop until users free space by hand.
type reserve struct {
	path string
	size int64
	log  *slog.Logger
	held atomic.Bool // the reserve is in place (or none is kept)

	mu      sync.Mutex
	have    bool
	tried   time.Time
	checked time.Time // room's last look at the free space
	dropped int       // times the reserve was given up (tests, logs)
}

// roomEvery is how often room looks at the free space while the reserve
// is given up (a statfs, and a fallocate when there is room).
const roomEvery = 100 * time.Millisecond

func newReserve(path string, size int64, log *slog.Logger) *reserve {
	r := &reserve{path: path, size: size, log: log}
	if size > 0 {
		r.refill(time.Time{})
	} else {
		r.held.Store(true) // no reserve: nothing to protect
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
	r.make()
}

// make creates the reserve's file and allocates its blocks; r.mu is held.
func (r *reserve) make() {
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
	r.held.Store(true)
}

// room is nil while writers other than the catalog may take space on its
// file system: the reserve is in place. While it is given up, room looks
// at the free space (at most every roomEvery by the clock now) and makes
// the reserve again as soon as as much as it is free; until then it
// answers ENOSPC.
func (r *reserve) room(now func() time.Time) error {
	if r.held.Load() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := now(); !r.have && t.Sub(r.checked) >= roomEvery {
		r.checked = t
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Dir(r.path), &st); err == nil && int64(st.Bavail)*st.Bsize >= r.size {
			r.make()
		}
	}
	if r.have {
		return nil
	}
	return unix.ENOSPC
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
	r.held.Store(false)
	r.dropped++
	r.log.Warn("catalog: the disk is full; using the catalog's reserved space so that exports go on, and refusing writes to the store (ENOSPC) until as much is free again — free space on the store (ferry hsm release, or delete files)", "reserve", r.path, "bytes", r.size)
	return true
}

// diskFull reports whether err is SQLite's SQLITE_FULL (or ENOSPC).
func diskFull(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, unix.ENOSPC) || strings.Contains(err.Error(), "database or disk is full")
}
