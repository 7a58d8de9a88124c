// Package store owns the store directory: the local (or shared) directory
// tree that holds a ferry file system's names and file data, below which the
// mount, the importer and the exporter do all their file system work.
//
// # Safe path access (invariant 4, docs/invariants.md)
//
// A Store keeps an O_PATH descriptor of its root and resolves every relative
// path with openat2(2) and RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS, then operates with the *at system call on the parent
// directory's descriptor and the plain final name. No ".." component, absolute
// path or symbolic link — not even one that points to a directory inside the
// store — is followed while resolving a path: the kernel refuses it (ELOOP for
// a symlink, EXDEV for an escape). Symlinks are ordinary entries: Symlink
// stores a target verbatim, Readlink returns it, Lstat describes the link;
// the daemon never follows one. A FUSE client following a symlink does so in
// its own kernel, through the mount, where the kernel resolves the target
// against the mount, not the daemon's view of the store.
//
// Relative paths are slash-separated names ("a/b/c"; "." is the root). A
// path is refused (ErrInvalidPath, EINVAL) if it is absolute, empty, has
// empty, "." or ".." components or a NUL byte; a component over NAME_MAX
// (keypath.MaxNameLen) bytes is ENAMETOOLONG (ErrNameTooLong). Every path
// keypath produces is accepted; local names need not be UTF-8.
//
// # Paths of any length
//
// A path has no length limit: the mount shows a tree of any depth, and a
// process whose working directory is deep in it may use a relative path of
// up to PATH_MAX from there (the kernel refuses longer ones before the
// daemon sees them), so the store path — which also holds the working
// directory's own path — can be longer than PATH_MAX. No path is ever
// joined onto the store's own location: the root is a descriptor. A path of
// PATH_MAX bytes or more is resolved in steps (resolve), each openat2 from
// the directory the previous step opened with a part shorter than PATH_MAX,
// so every kernel call gets less than PATH_MAX and the final operation is a
// *at call on the parent's descriptor and a name of at most NAME_MAX.
//
// # Reserved names
//
// MetaDir (".ferry") in the store root holds ferry's own data (catalog,
// recovery files) and temporary stub files carry TempPrefix in their name.
// Neither is visible through the Store API: a lookup answers ENOENT, an
// attempt to create such a name EPERM, both wrapping ErrReserved, and Readdir
// skips them. The mount relies on this to hide them.
//
// # Errors
//
// Every error of an operation on a path is an *fs.PathError with the
// operation and the relative path; the errno is kept, so errors.Is(err,
// unix.ENOENT) holds and Errno extracts what FUSE must answer.
//
// # File state
//
// See state.go for the extended attribute that carries a file's HSM flags,
// origin and chunk map, stub.go for crash-safe stub creation and recover.go
// for the checks run before a mount serves.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ferry-hpc/ferry/internal/keypath"
	"golang.org/x/sys/unix"
)

const (
	// MetaDir is the hidden metadata folder in the store root.
	MetaDir = ".ferry"
	// TempPrefix starts the name of a stub under construction when the
	// file system cannot make it unnamed (O_TMPFILE, see CreateStub) or
	// when ReplaceStub swaps it in. Such files live next to their final
	// name until renamed into place; a crash can leave them behind, and
	// RemoveTempStubs deletes them.
	TempPrefix = ".ferry-tmp."
	// pathMax is Linux's PATH_MAX, including the terminating NUL.
	pathMax = 4096
	// resolveFlags confine every path resolution below the root.
	resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
)

var (
	// ErrInvalidPath: the path is not a plain relative path (EINVAL).
	ErrInvalidPath = errors.New("not a plain relative path below the store root")
	// ErrNameTooLong: a path component is longer than NAME_MAX
	// (ENAMETOOLONG).
	ErrNameTooLong = errors.New("a name in the path is longer than NAME_MAX (255 bytes)")
	// ErrReserved: the name belongs to ferry's metadata (ENOENT for a
	// lookup, EPERM for a creation).
	ErrReserved = errors.New("name reserved for ferry's metadata")
	// ErrNoOpenat2: the kernel lacks openat2(2) (Linux < 5.6).
	ErrNoOpenat2 = errors.New("the kernel lacks openat2(2), which ferry needs to confine store access (Linux 5.6 or newer)")
)

// errnoError is a sentinel that also carries the errno FUSE should answer.
type errnoError struct {
	sentinel error
	errno    unix.Errno
}

func (e *errnoError) Error() string         { return e.sentinel.Error() }
func (e *errnoError) Unwrap() []error       { return []error{e.sentinel, e.errno} }
func withErrno(s error, n unix.Errno) error { return &errnoError{s, n} }

// Errno returns the errno err carries, or EIO if it carries none (nil for
// nil). The FUSE layer answers with it.
func Errno(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var n unix.Errno
	if errors.As(err, &n) {
		return n
	}
	return unix.EIO
}

// Store is a store directory. It is safe for concurrent use.
type Store struct {
	root  int    // O_PATH|O_DIRECTORY descriptor of the root
	path  string // the root as given to Open, for messages and MetaPath
	locks [64]sync.Mutex
	maps  MapStore // where chunk maps too large for an xattr live; may be nil

	// How CreateStub makes a stub (stub.go): each flag is set once, when
	// the file system or the process first refuses the faster way.
	noTmpfile  atomic.Bool // no O_TMPFILE+linkat: temporary name and rename
	linkByProc atomic.Bool // linkat AT_EMPTY_PATH refused: link via /proc/self/fd

	// moves orders renames against the exporter's record of where a
	// file's object is (State.Origin): see MoveLock.
	moves sync.RWMutex

	// override: the process may write whatever the modes say
	// (CAP_DAC_OVERRIDE); without it inDir opens read-only directories of
	// its own for the importer (own.go).
	override bool

	mu     sync.Mutex
	closed bool

	// hooks are set only by the package's tests, on their own Store
	// before they use it; nil fields (always, outside tests) do nothing.
	hooks testHooks
}

// testHooks let a test observe, and break, the orders the store's crash
// safety rests on: each is a fault no real part produces on demand. Being
// fields of one Store, not package variables, they let tests run in
// parallel.
type testHooks struct {
	// stubStep is called after each step of stub creation ("created",
	// "truncated", "xattr", "attrs", "renamed"): a test dies there
	// (crash_test.go) or makes the step fail, as a non-nil error does
	// (after "renamed" the stub is complete and the error is ignored).
	stubStep func(step string) error
	// syncData replaces CommitRanges' fdatasync of the file's data.
	syncData func(fd int) error
	// afterSync is called when that fdatasync returned, afterXattr when
	// the state record marking the chunks was written (CommitRanges).
	afterSync, afterXattr func()
}

// MoveLock orders renames with updates of State.Origin. A rename that
// records origins (the mount, before it renames a file or a tree the
// repository knows) holds it exclusively from the first origin it writes to
// the rename itself; the exporter holds it shared while it checks whether a
// file is still at the path whose key it just wrote and records the answer
// in the file's Origin. Without it, an exporter could find the file still
// in place, the mount then record the old path as Origin and rename, and
// the exporter then clear that Origin: the file would point at its new
// name's key while its object is under the old one. Within one process; a
// shared store's nodes need a claim in the catalog for the same purpose.
func (s *Store) MoveLock() *sync.RWMutex { return &s.moves }

// At reports whether rel names the inode f has open (false if rel does not
// exist or is another file).
func (s *Store) At(rel string, f *os.File) (bool, error) {
	sta, err := s.Lstat(rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, err
	}
	var stf unix.Stat_t
	if err := WithFd(f, func(fd int) error { return unix.Fstat(fd, &stf) }); err != nil {
		return false, err
	}
	return sta.Dev == stf.Dev && sta.Ino == stf.Ino, nil
}

// Open opens the store rooted at dir and creates MetaDir in it if needed.
// It fails with an error wrapping ErrNoOpenat2 on a kernel without openat2.
func Open(dir string) (*Store, error) {
	if err := CheckOpenat2(); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open store", Path: dir, Err: err}
	}
	s := &Store{root: fd, path: dir, override: hasCap(unix.CAP_DAC_OVERRIDE)}
	if err := unix.Mkdirat(fd, MetaDir, 0o700); err != nil && err != unix.EEXIST {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "create store metadata folder", Path: dir + "/" + MetaDir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, MetaDir, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		if err == nil {
			err = unix.ENOTDIR
		}
		return nil, &fs.PathError{Op: "open store metadata folder", Path: dir + "/" + MetaDir, Err: err}
	}
	// State by path uses /proc/self/fd (see state.go); fail early without it.
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open store %s: /proc is not mounted; ferry needs /proc/self/fd to read extended attributes of files it must not open: %w", dir, err)
	}
	return s, nil
}

// CheckOpenat2 reports whether the kernel supports openat2(2).
func CheckOpenat2() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if err == unix.ENOSYS {
		var u unix.Utsname
		rel := "unknown"
		if unix.Uname(&u) == nil {
			rel = unix.ByteSliceToString(u.Release[:])
		}
		return fmt.Errorf("%w; this kernel is %s", ErrNoOpenat2, rel)
	}
	return fmt.Errorf("openat2 probe: %w", err)
}

// Close releases the root descriptor.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return unix.Close(s.root)
}

// Root returns the root directory as given to Open.
func (s *Store) Root() string { return s.path }

// MetaPath returns the path of MetaDir, for components (the SQLite catalog)
// that open their own files there. Nothing the repository or a user controls
// is ever joined onto it.
func (s *Store) MetaPath() string { return s.path + "/" + MetaDir }

// SetMapStore sets where chunk maps too large for an xattr are kept (the
// catalog). Without one, such files cannot be partly fetched (ErrMapTooLarge).
func (s *Store) SetMapStore(m MapStore) { s.maps = m }

// validate checks rel and returns its parent directory and final name
// ("." and "." for the root). create says whether the operation makes a new
// name, which decides the errno of a reserved name.
func validate(rel string, create bool) (dir, base string, err error) {
	if rel == "." {
		return ".", ".", nil
	}
	// No limit on the whole length (see "Paths of any length").
	if rel == "" || rel[0] == '/' {
		return "", "", withErrno(ErrInvalidPath, unix.EINVAL)
	}
	first := true
	for c := range strings.SplitSeq(rel, "/") {
		switch {
		case c == "" || c == "." || c == ".." || strings.IndexByte(c, 0) >= 0:
			return "", "", withErrno(ErrInvalidPath, unix.EINVAL)
		case len(c) > keypath.MaxNameLen:
			return "", "", withErrno(ErrNameTooLong, unix.ENAMETOOLONG)
		case (first && c == MetaDir) || strings.HasPrefix(c, TempPrefix):
			if create {
				return "", "", withErrno(ErrReserved, unix.EPERM)
			}
			return "", "", withErrno(ErrReserved, unix.ENOENT)
		}
		first = false
	}
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:], nil
	}
	return ".", rel, nil
}

// Reserved reports whether name, a single component in directory dir
// ("." for the root), is hidden by the store.
func Reserved(dir, name string) bool {
	return (dir == "." && name == MetaDir) || strings.HasPrefix(name, TempPrefix)
}

// openat2 resolves rel (already validated) below the root and opens it
// with flags. A path of PATH_MAX bytes or more is resolved in steps (see
// resolve).
func (s *Store) openat2(rel string, flags int, mode uint32) (int, error) {
	if len(rel) < pathMax {
		return openBeneath(s.root, rel, flags, mode)
	}
	dfd, last, err := s.resolve(rel)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	return openBeneath(dfd, last, flags, mode)
}

// resolve opens, O_PATH, the deepest directory of rel (validated, at least
// PATH_MAX bytes long) that leaves a remainder shorter than PATH_MAX, and
// returns it with that remainder. Each step is one openat2 with
// resolveFlags from the directory the step before opened, of a part
// shorter than PATH_MAX that ends at a '/': every step only descends
// through plain names (validate refused "..", and symlinks are refused by
// the kernel), so the result is below the root exactly as one openat2 of
// the whole path would be, and it is a directory (O_DIRECTORY: ENOTDIR if
// not).
func (s *Store) resolve(rel string) (dfd int, rest string, err error) {
	dfd = s.root
	for len(rel) >= pathMax {
		// validate bounds every name by NAME_MAX, so a '/' exists in
		// the first PATH_MAX bytes.
		cut := strings.LastIndexByte(rel[:pathMax-1], '/')
		next, err := openBeneath(dfd, rel[:cut], unix.O_PATH|unix.O_DIRECTORY, 0)
		if dfd != s.root {
			unix.Close(dfd)
		}
		if err != nil {
			return -1, "", err
		}
		dfd, rel = next, rel[cut+1:]
	}
	if dfd == s.root {
		// Never returned shared: the caller closes what it gets.
		d, err := unix.Dup(s.root)
		if err != nil {
			return -1, "", err
		}
		dfd = d
	}
	return dfd, rel, nil
}

// openBeneath is openat2(dfd, rel) confined below dfd (resolveFlags).
// EAGAIN, which the kernel may answer when a concurrent rename races a
// RESOLVE_BENEATH lookup, is retried, as is EINTR.
func openBeneath(dfd int, rel string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveFlags}
	if flags&(unix.O_CREAT|unix.O_TMPFILE) != 0 {
		how.Mode = uint64(mode)
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dfd, rel, &how)
		if err == unix.EAGAIN && i < 16 {
			continue
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// dirFd returns a descriptor of directory dir (validated) to use with *at
// calls and a function that releases it. The root's own descriptor is
// returned for ".".
func (s *Store) dirFd(dir string) (int, func(), error) {
	if dir == "." {
		return s.root, func() {}, nil
	}
	fd, err := s.openat2(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, nil, err
	}
	return fd, func() { unix.Close(fd) }, nil
}

// parent validates rel and opens its parent directory.
func (s *Store) parent(rel string, create bool) (fd int, base string, release func(), err error) {
	dir, base, err := validate(rel, create)
	if err != nil {
		return -1, "", nil, err
	}
	if base == "." {
		// The root has no name in a parent; callers that accept "." handle
		// it before calling parent.
		return -1, "", nil, withErrno(ErrInvalidPath, unix.EINVAL)
	}
	fd, release, err = s.dirFd(dir)
	if err != nil {
		return -1, "", nil, err
	}
	return fd, base, release, nil
}

// lockFor returns the mutex that serialises state read-modify-write cycles
// of inode ino within this process (other nodes of a shared store claim a
// file through the catalog).
func (s *Store) lockFor(ino uint64) *sync.Mutex {
	return &s.locks[ino%uint64(len(s.locks))]
}

func pathErr(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: rel, Err: err}
}
