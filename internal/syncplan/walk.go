package syncplan

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Warning messages, in aws's wording (awscli s3/filegenerator.py), so that
// "warning: Skipping file <path>. <message>" reads the same.
const (
	MsgNotExist    = "File does not exist."
	MsgSpecial     = "File is character special device, block special device, FIFO, or socket."
	MsgNotReadable = "File/Directory is not readable."
	// Not aws's: aws follows a symlink loop until the kernel's ELOOP and
	// then reports "File does not exist." for the 40-deep path.
	MsgSymlinkLoop = "Directory is a symbolic link loop (it is one of its own parent directories)."
	// Not aws's either: aws on Python 3 decodes such names with
	// surrogateescape and fails later; an S3 key must be valid UTF-8.
	MsgBadName = "File name is not valid UTF-8, so it cannot be an S3 key."
	// The entry changed type between the directory listing and its stat.
	MsgChanged = "File changed while the directory was being listed."
)

// WalkLocal walks the tree under root in S3 key order of the relative paths
// (a directory sorts as its name + "/"), yielding regular files (and, when
// following symlinks, the files symlinks point at). Special files and
// unreadable entries are skipped with a warning.
//
// The walk is depth-first and streaming: it holds the sorted listing of the
// directory it is in and of each of its ancestors, nothing else, so memory
// grows with the depth and the widest directory, not with the tree. Sorting a
// directory's entries with directories compared as name+"/" and descending
// into a directory at its place yields the byte order of the full relative
// paths, because everything under "d/" shares that prefix and no other entry
// of the directory starts with "d/".
//
// As aws does:
//   - without FollowSymlinks, symlinks are skipped silently, the root
//     included (a root that is a symlink yields nothing);
//   - with it, symlinks to files and directories are followed; a symlink whose
//     target is missing warns "File does not exist.";
//   - sockets, FIFOs and devices warn MsgSpecial; a file that cannot be opened
//     for reading or a directory that cannot be listed warns MsgNotReadable
//     (aws opens every file to check; so does this walk).
//
// Beyond aws: a directory that is its own ancestor (a symlink loop) is
// skipped with MsgSymlinkLoop instead of being walked 40 levels deep, and a
// name that is not valid UTF-8 is skipped with MsgBadName.
//
// Entry.Path is root joined with the relative path; Warning.Path is absolute,
// as in aws's messages. Next returns an error only when ctx is done or the
// root is not a directory.
func WalkLocal(ctx context.Context, root string, opts LocalOptions) Iterator {
	return &localWalker{ctx: ctx, root: root, opts: opts}
}

type localWalker struct {
	ctx     context.Context
	root    string
	absRoot string
	opts    LocalOptions
	started bool
	stack   []*dirFrame
}

// dirFrame is one directory being walked: its sorted listing and how far the
// walk has got in it.
type dirFrame struct {
	path     string // on disk, joinable: ends in a separator only for "/"
	rel      string // relative path of the directory plus "/", "" for the root
	ents     []dirent
	next     int
	dev, ino uint64
}

type dirent struct {
	name  string
	isDir bool // sorts as name + "/"
}

func (w *localWalker) warn(rel, msg string) {
	if w.opts.Warn == nil {
		return
	}
	w.opts.Warn(Warning{Path: filepath.Join(w.absRoot, filepath.FromSlash(rel)), Message: msg})
}

func (w *localWalker) stat(path string) (os.FileInfo, error) {
	if w.opts.FollowSymlinks {
		return os.Stat(path)
	}
	return os.Lstat(path)
}

func (w *localWalker) start() error {
	w.started = true
	abs, err := filepath.Abs(w.root)
	if err != nil {
		return fmt.Errorf("walk %s: %w", w.root, err)
	}
	w.absRoot = abs
	if !w.opts.FollowSymlinks {
		// aws strips the trailing separator before asking islink: "link/"
		// would otherwise resolve the link.
		p := strings.TrimRight(w.root, string(filepath.Separator))
		if p == "" {
			p = string(filepath.Separator)
		}
		if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil // aws: the root is an ignored symlink, nothing to sync
		}
	}
	st, err := os.Stat(w.root)
	if err != nil {
		w.warn("", MsgNotExist)
		return nil
	}
	if !st.IsDir() {
		return fmt.Errorf("walk %s: not a directory", w.root)
	}
	f, err := w.openDir(filepath.Clean(w.root), "", st)
	if err != nil {
		w.warn("", MsgNotReadable)
		return nil
	}
	w.stack = append(w.stack, f)
	return nil
}

// openDir reads and sorts one directory. It reads the directory in batches
// (not os.ReadDir, which holds every os.DirEntry and sorts them too), so a
// huge directory costs one small dirent per name.
func (w *localWalker) openDir(path, rel string, st os.FileInfo) (*dirFrame, error) {
	d, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f := &dirFrame{path: path, rel: rel}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		f.dev, f.ino = uint64(sys.Dev), sys.Ino
	}
	for {
		des, err := d.ReadDir(1024)
		for _, de := range des {
			name := de.Name()
			if !utf8.ValidString(name) {
				w.warn(rel+name, MsgBadName)
				continue
			}
			e := dirent{name: name, isDir: de.IsDir()}
			if de.Type()&fs.ModeSymlink != 0 {
				if !w.opts.FollowSymlinks {
					continue // aws: symlinks are ignored, silently
				}
				// Sort a link by what it points at, as aws does
				// (os.path.isdir). A broken link sorts as a file and
				// warns when its turn comes.
				if tst, err := os.Stat(joinPath(path, name)); err == nil {
					e.isDir = tst.IsDir()
				}
			}
			f.ents = append(f.ents, e)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(f.ents, func(i, j int) bool { return direntLess(f.ents[i], f.ents[j]) })
	return f, nil
}

// direntLess orders two names of one directory as their S3 keys will be
// ordered: a directory compares as name + "/".
func direntLess(a, b dirent) bool {
	x, y := a.name, b.name
	n := min(len(x), len(y))
	if x[:n] != y[:n] {
		return x[:n] < y[:n]
	}
	// One is a prefix of the other (names in one directory differ, so
	// not both equal). Compare the byte after the common part: the next
	// name byte, the "/" of a directory, or the end.
	next := func(s string, dir bool) int {
		if len(s) > n {
			return int(s[n])
		}
		if dir {
			return '/'
		}
		return -1
	}
	return next(x, a.isDir) < next(y, b.isDir)
}

func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, string(filepath.Separator)) {
		return dir + name
	}
	return dir + string(filepath.Separator) + name
}

// Next returns the next regular file in Rel order.
func (w *localWalker) Next() (Entry, bool, error) {
	if !w.started {
		if err := w.start(); err != nil {
			return Entry{}, false, err
		}
	}
	for len(w.stack) > 0 {
		if err := w.ctx.Err(); err != nil {
			return Entry{}, false, err
		}
		top := w.stack[len(w.stack)-1]
		if top.next == len(top.ents) {
			w.stack[len(w.stack)-1] = nil
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		de := top.ents[top.next]
		top.ents[top.next] = dirent{} // done with it
		top.next++
		path := joinPath(top.path, de.name)
		rel := top.rel + de.name
		st, err := w.stat(path)
		if err != nil {
			// aws: os.path.exists is false for any stat failure.
			return w.skip(rel, de.isDir, MsgNotExist)
		}
		if st.IsDir() != de.isDir {
			return w.skip(rel, de.isDir || st.IsDir(), MsgChanged)
		}
		mode := st.Mode()
		switch {
		case mode.IsDir():
			if w.onStack(st) {
				return w.skip(rel, true, MsgSymlinkLoop)
			}
			f, err := w.openDir(path, rel+"/", st)
			if err != nil {
				return w.skip(rel, true, MsgNotReadable)
			}
			w.stack = append(w.stack, f)
		case mode.IsRegular():
			if !w.readable(path) {
				return w.skip(rel, false, MsgNotReadable)
			}
			return Entry{Rel: rel, Size: st.Size(), ModTime: st.ModTime(), Path: path}, true, nil
		default: // device, FIFO, socket; a symlink only in a race
			return w.skip(rel, false, MsgSpecial)
		}
	}
	return Entry{}, false, nil
}

// skip warns about an entry the walk cannot sync and returns it marked
// Skipped (a directory with a trailing "/"), so that Plan keeps whatever the
// destination holds under that name: ferry never deletes the remote copy of
// a file it could not read, even with --delete.
func (w *localWalker) skip(rel string, dir bool, msg string) (Entry, bool, error) {
	w.warn(rel, msg)
	if dir {
		rel += "/"
	}
	return Entry{Rel: rel, Skipped: true}, true, nil
}

// onStack reports whether the directory st is the directory of a frame on
// the stack: entering it again would loop.
func (w *localWalker) onStack(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	for _, f := range w.stack {
		if f.dev == uint64(sys.Dev) && f.ino == sys.Ino {
			return true
		}
	}
	return false
}

// readable is aws's is_readable for a file: it can be opened for reading.
// O_NONBLOCK keeps a file swapped for a FIFO since the stat from blocking.
func (w *localWalker) readable(path string) bool {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if !w.opts.FollowSymlinks {
		flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Open(path, flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		unix.Close(fd)
		return true
	}
}
