// Package fusefs is the FUSE face of a ferry file system: go-fuse nodes
// (github.com/hanwen/go-fuse/v2/fs) that show the store directory and pass
// every operation through internal/store.
//
// # Thin nodes
//
// A node keeps no copy of anything: each operation is one call into the
// store (a lookup, an openat2-confined open…) or into the write path
// (internal/writepath: a rename, an unlink, a commit…) and a translation of
// the error into an errno with store.Errno. The node's path is
// computed from go-fuse's inode tree at the time of the call. File handles
// hold the descriptor the store opened; reads and writes go to it. Nothing
// here talks to S3.
//
// # Lazy import (Options.Importer)
//
// With an Importer, a lookup in or an opendir of a directory first calls
// EnsureListed (the first one lists the repository prefix into the store),
// and a read of a file that is not in passthrough mode first calls
// EnsureData for the bytes asked (a released file's chunks are fetched;
// invariant 3 in docs/invariants.md: never zeros from a hole). An open for writing, or a
// truncate to a non-zero size, of a released file restores it whole first
// (EnsureData of every byte), so a local write is never overwritten by a
// later fetch; an O_TRUNC open or a truncate to 0 marks it hsm.Truncated
// instead, so nothing is fetched into it. FS.InUse tells the importer
// whether a file is open (release refuses it), and FS.Invalidate pushes its
// changes behind the mount to the kernel's caches. A listing or a fetch the
// repository does not answer fails after the importer's fetch timeout, and
// the lookup, readdir or read answers EIO; a request the kernel interrupts
// (FUSE_INTERRUPT: go-fuse cancels its context) answers EINTR at once while
// the listing or fetch goes on for the others waiting for it.
//
// # Write path (Options.Journal, FS.VersionRead)
//
// What a change made through the mount does to content versions and the
// export journal is internal/writepath's: FS holds a writepath.Writer,
// each node the writepath.Inode of its store inode, each open file a
// writepath.Handle, and every operation that changes the store makes one
// call into it — Write and Allocate (BeginWrite, EndWrite around the
// pwrite or fallocate), an O_TRUNC open (Changed), Flush, Fsync and
// Release (Commit: the change is journaled before close or fsync returns,
// invariant 1 in docs/invariants.md), truncate (Resize), chmod, chown and
// utimes (MetaChanged), Mkdir, Symlink and Mknod (Made), Link, Unlink,
// Rmdir, Rename, and a lookup (LookedUp, which records the names of hard
// links). FS.VersionRead and FS.UnseenWriter, the exporter's hooks, are
// the Writer's. A failed journal append answers EIO.
//
// What stays here is FUSE's: a first open for writing is never
// passthrough, so the daemon sees the writes and keeps versions exact; a
// writer joining an inode already open in passthrough mode (readers first)
// writes through the kernel unseen, so its handle is made a passthrough
// writer of the write path (writepath.Writer.UnseenOpen at the open, which
// lets the node's lock go while it appends), and the kernel's ordering of
// RELEASE after close(2) is why commits of an inode wait for each other
// (TestCommitWaitsForOtherHandles).
//
// # What the mount shows
//
// Everything in the store except its metadata folder store.MetaDir and
// temporary stub files (store.TempPrefix): the store hides them, so a lookup
// answers ENOENT, a readdir skips them and creating such a name answers
// EPERM. Symlinks are shown as they are: the daemon stores and returns
// their targets verbatim and never follows one (the store resolves every
// path with RESOLVE_NO_SYMLINKS); a process that follows a symlink in the
// mount does so in its own kernel, against its own view of the file system,
// with its own permissions — exactly as with a symlink on a local disk.
// FIFOs, unix sockets and devices (Mknod) are shown and served by the
// kernel like on a local disk; they stay in the store, never exported (see
// Node.Mknod). Paths have no length limit (the store resolves long ones in
// steps); a name over NAME_MAX is ENAMETOOLONG. A mode of 0000 is shown as
// it is (go-fuse's NullPermissions).
//
// # Options (see MountOptions)
//
//   - Entry, attribute and negative-lookup timeouts default to 1 s: changes
//     made through this mount are seen at once (the kernel updates its own
//     caches), changes made behind it (another node of a shared store, a
//     user working in the store directory directly) within a second, and
//     repeated lookups of missing names (PATH and Python import searches)
//     do not all reach the daemon. The importer, which changes the store
//     from inside the daemon, notifies the kernel through FS.Invalidate.
//   - default_permissions always: the kernel checks permission bits against
//     the attributes the store reports, so the daemon never has to (and a
//     daemon running as root does not grant root's rights to its callers).
//   - allow_other when the daemon runs as root (HPC nodes mount once for
//     every user; default_permissions makes that safe), or as another user
//     when /etc/fuse.conf has user_allow_other (fusermount3 refuses it
//     otherwise); without it only the daemon's user can use the mount, and
//     the log says so (AllowOther).
//   - Mounted with mount(2) as root, by fusermount3 otherwise (go-fuse
//     runs it; Debian's fuse3 package has it).
//   - MaxWrite 1 MiB (the kernel's default fuse max_pages_limit), readahead
//     asked at 1 MiB (Linux offers at most 128 KiB in INIT and keeps that;
//     as root the mount then sets KernelReadahead through sysfs),
//     64 background requests, readdirplus on (ls -l and find
//     get attributes with the names), atomic O_TRUNC (the daemon sees the
//     truncation in the open, which the importer needs to skip restoring a
//     released file that is about to be emptied), extended attributes off
//     (the kernel stops asking; the store's user.ferry.* state must not be
//     visible or writable through the mount, and user xattrs are a later
//     increment).
//
// # Passthrough
//
// With Linux ≥ 6.9 and a daemon with CAP_SYS_ADMIN, a file that is wholly
// local (no state, or a state without the released flag) is opened in FUSE
// passthrough mode: the kernel reads and writes the store file directly and
// the daemon sees only open, flush, fsync and release. The kernel requires
// all opens of one inode to agree on the mode while any is open, and go-fuse
// registers one backing descriptor per inode (the first opener's), so a node
// counts its opens and picks the mode at the first; the first passthrough
// open uses a read-write descriptor when it can so later writers share it.
// The kernel holds the mode until it has the reply to the last RELEASE, so
// an open during a Release, or within releaseGrace (1 s) after it, keeps
// the mode too (`cp x f; md5sum f` would otherwise get EIO now and then).
// A released file is never passthrough: its reads must wait for data.
package fusefs

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

// Options configure a mount.
type Options struct {
	// EntryTimeout, AttrTimeout and NegativeTimeout are the kernel's cache
	// lifetimes for names, attributes and failed lookups (default 1 s each;
	// a negative value means 0).
	EntryTimeout, AttrTimeout, NegativeTimeout time.Duration
	// NoPassthrough disables FUSE passthrough even where the kernel offers it.
	NoPassthrough bool
	// Debug logs every FUSE request and reply to Logger.
	Debug bool
	// Logger receives the debug log and diagnostics (default: discard).
	Logger *slog.Logger
	// FsName is the "Filesystem" column of df (default: the store's root).
	FsName string
	// Importer lists directories and fetches data of released files
	// lazily; nil shows the store as it is.
	Importer Importer
	// Journal receives the export journal entries of changes made
	// through the mount (internal/writepath decides which); nil journals
	// nothing (content versions are still kept).
	Journal writepath.Journal
	// Access receives, batched, the times files are opened through the
	// mount (access.go; call FS.Close after the mount ends); nil records
	// nothing.
	Access AccessRecorder
	// AccessBatch and AccessEvery bound the access records waiting in
	// memory and how often they are written (defaults DefaultAccessBatch
	// and DefaultAccessEvery; tests make them small).
	AccessBatch int
	AccessEvery time.Duration
}

// Name is the subtype of every ferry mount: mounts show as type "fuse.ferry"
// in /proc/self/mountinfo, which is how `ferry umount` recognises them.
const Name = "ferry"

// MaxWrite is the largest read or write request the kernel sends.
const MaxWrite = 1 << 20

// Stats counts requests the daemon served itself; reads and writes of files
// in passthrough mode never reach it.
type Stats struct {
	Opens, PassthroughOpens, Reads, Writes atomic.Uint64
}

// FS is a mounted (or mountable) view of one store.
type FS struct {
	store       *store.Store
	rootDev     uint64
	owner       bool // may chown (CAP_CHOWN): new names get the caller's owner
	egid        uint32
	passthrough bool
	log         *slog.Logger
	imp         Importer
	wp          *writepath.Writer    // content versions and the export journal
	acc         *accessLog           // Options.Access, or nil
	root        atomic.Pointer[Node] // the mounted root, for InUse and Invalidate
	Stats       Stats
}

// New returns the file system for st. Its root node is Root.
func New(st *store.Store, opt Options) (*FS, error) {
	root, err := st.Lstat(".")
	if err != nil {
		return nil, err
	}
	lg := opt.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	var listed writepath.ListedDirs
	if m, ok := opt.Importer.(listedMover); ok {
		listed = m
	}
	var restore func(ctx context.Context, rel string) error
	if r, ok := opt.Importer.(restorer); ok {
		restore = func(ctx context.Context, rel string) error { return r.Restore(ctx, rel, nil) }
	}
	return &FS{
		store:       st,
		rootDev:     root.Dev,
		owner:       store.MayChown(),
		egid:        uint32(os.Getegid()),
		passthrough: !opt.NoPassthrough,
		log:         lg,
		imp:         opt.Importer,
		wp: writepath.New(writepath.Config{
			Store: st, Journal: opt.Journal, Logger: lg,
			Imported: opt.Importer != nil, Listed: listed, Restore: restore,
		}),
		acc: newAccessLog(opt, st, lg),
	}, nil
}

// Root returns a new root node for a mount.
func (f *FS) Root() *Node {
	n := &Node{fsys: f}
	f.root.Store(n)
	return n
}

// stable returns the identity go-fuse gives the kernel for st: the store's
// inode number (mixed with the device for the rare subtree on another file
// system), so `ls -i` and hard links behave as on the store.
func (f *FS) stable(st *unix.Stat_t) fs.StableAttr {
	ino := st.Ino
	if d := st.Dev; d != f.rootDev {
		ino ^= bits.RotateLeft64(d^f.rootDev, 32)
	}
	return fs.StableAttr{Mode: st.Mode & unix.S_IFMT, Ino: ino, Gen: 1}
}

// MountOptions returns the go-fuse options ferry mounts with (see the
// package comment for why each is chosen).
func MountOptions(st *store.Store, opt Options) *fs.Options {
	timeout := func(d time.Duration) *time.Duration {
		if d == 0 {
			d = time.Second
		}
		if d < 0 {
			d = 0
		}
		return &d
	}
	name := opt.FsName
	if name == "" {
		name = st.Root()
	}
	o := &fs.Options{
		EntryTimeout:    timeout(opt.EntryTimeout),
		AttrTimeout:     timeout(opt.AttrTimeout),
		NegativeTimeout: timeout(opt.NegativeTimeout),
		// A file or directory of mode 0000 is shown as 0000: go-fuse
		// would otherwise show 0644 (0755 for a directory), and the
		// kernel's permission checks (default_permissions) would follow
		// the wrong bits (TestZeroMode).
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:            name,
			Name:              Name,
			Options:           []string{"default_permissions"},
			AllowOther:        AllowOther(),
			DirectMount:       os.Geteuid() == 0, // mount(2) itself; fusermount3 only as fallback
			MaxWrite:          MaxWrite,
			MaxReadAhead:      MaxWrite,
			MaxBackground:     64,
			DisableXAttrs:     true,
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
			Debug:             opt.Debug,
		},
	}
	if opt.Logger != nil {
		o.Logger = slog.NewLogLogger(opt.Logger.Handler(), slog.LevelDebug)
		o.MountOptions.Logger = o.Logger
	} else {
		o.MountOptions.Logger = log.New(os.Stderr, "fuse: ", 0)
	}
	return o
}

// Mount mounts st on mountpoint and serves it until the mount goes away
// (server.Wait returns then). The caller must have set its umask to 0: the
// kernel has already applied the caller's umask to every mode it sends.
func Mount(mountpoint string, st *store.Store, opt Options) (*fuse.Server, *FS, error) {
	fsys, err := New(st, opt)
	if err != nil {
		return nil, nil, err
	}
	rootSt, err := st.Lstat(".")
	if err != nil {
		return nil, nil, err
	}
	o := MountOptions(st, opt)
	rootAttr := fsys.stable(&rootSt)
	o.RootStableAttr = &rootAttr
	server, err := fs.Mount(mountpoint, fsys.Root(), o)
	if err != nil {
		return nil, nil, fmt.Errorf("mount %s on %s: %w", st.Root(), mountpoint, err)
	}
	setReadahead(mountpoint, fsys.log)
	if !o.AllowOther {
		fsys.log.Info("mounted without allow_other: only this user can use the mount (uid "+strconv.Itoa(os.Geteuid())+
			"); to share it with other users, add user_allow_other to "+FuseConf+" and mount again", "mountpoint", mountpoint)
	}
	return server, fsys, nil
}

// KernelReadahead is how far ahead of a reader the kernel reads a file of
// the mount (its bdi's read_ahead_kb), set after the mount when the daemon
// may (root). The kernel offers FUSE at most 128 KiB in INIT, so a cold
// reader's data came in 128 KiB requests, each a round trip through the
// daemon (EnsureData, a splice of the reply); with 512 KiB it sends
// requests of up to 512 KiB, a quarter as many. Not more: with 4 MiB the
// kernel sent 1 MiB requests, several at once and out of order, which
// broke the importer's sequential runs (a cold 256 MiB read: 125–185 GETs
// against 29), and whose replies no longer fit a pipe
// (/proc/sys/fs/pipe-max-size, 1 MiB by default, with the header and a
// page to spare), so go-fuse copied them (pread and writev) instead of
// splicing them from the store file.
const KernelReadahead = 512 << 10

// setReadahead sets the read_ahead_kb of the mount's bdi (0:minor, the
// mount's device) to KernelReadahead. The stat of the mountpoint goes
// through the mount, so it returns after the kernel has processed INIT
// (which sets the bdi's readahead itself). Without the right (not root)
// the kernel's default stays; only said at debug level.
func setReadahead(mountpoint string, log *slog.Logger) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		log.Debug("kernel readahead not set", "err", err)
		return
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(path, []byte(strconv.Itoa(KernelReadahead>>10)), 0); err != nil {
		log.Debug("kernel readahead not set", "path", path, "err", err)
	}
}

// FuseConf is the file that allows users other than root to mount with
// allow_other (a line "user_allow_other").
const FuseConf = "/etc/fuse.conf"

// AllowOther reports whether a mount made now is shared with every user
// (allow_other): always as root; as another user only when FuseConf
// allows it, since fusermount3 refuses the option otherwise.
func AllowOther() bool {
	if os.Geteuid() == 0 {
		return true
	}
	return userAllowOther(FuseConf)
}

// userAllowOther reports whether the fuse.conf at path has a
// user_allow_other line (comments start with #).
func userAllowOther(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}
