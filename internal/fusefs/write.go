package fusefs

// The write path's protocol (content versions, journal entries, commits)
// is internal/writepath's: the nodes call FS.wp, a writepath.Writer, and
// each node holds the writepath.Inode of its store inode (Node.w).

// VersionRead is exporter.Config.VersionRead: the exporter is about to read
// the content version of the inode (dev, ino) for an upload
// (writepath.Writer.VersionRead).
func (f *FS) VersionRead(dev, ino uint64) { f.wp.VersionRead(dev, ino) }

// UnseenWriter reports whether the inode (dev, ino) of the store is open
// through the mount by a writer in passthrough mode (exporter.Config's
// UnseenWriter; writepath.Writer.UnseenWriter).
func (f *FS) UnseenWriter(dev, ino uint64) bool { return f.wp.UnseenWriter(dev, ino) }
