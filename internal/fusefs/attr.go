package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// setAttr fills a FUSE attribute record from a store stat.
func (f *FS) setAttr(a *fuse.Attr, st *unix.Stat_t) {
	a.Ino = f.stable(st).Ino
	a.Size = uint64(st.Size)
	a.Blocks = uint64(st.Blocks)
	a.Atime, a.Atimensec = uint64(st.Atim.Sec), uint32(st.Atim.Nsec)
	a.Mtime, a.Mtimensec = uint64(st.Mtim.Sec), uint32(st.Mtim.Nsec)
	a.Ctime, a.Ctimensec = uint64(st.Ctim.Sec), uint32(st.Ctim.Nsec)
	a.Mode = st.Mode
	a.Nlink = uint32(st.Nlink)
	a.Uid, a.Gid = st.Uid, st.Gid
	a.Rdev = uint32(st.Rdev)
	a.Blksize = uint32(st.Blksize)
}

func setStatfs(s *fuse.StatfsOut, st *unix.Statfs_t) {
	s.Blocks, s.Bfree, s.Bavail = st.Blocks, st.Bfree, st.Bavail
	s.Files, s.Ffree = st.Files, st.Ffree
	s.Bsize, s.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	s.NameLen = uint32(st.Namelen)
}
