package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// What each journal entry kind does (docs/semantics.md §4).

// errNotReady: the association exists but does not export now (CREATING,
// MISCONFIGURED); its entries wait.
type errNotReady struct{ a *dra.Assoc }

func (e errNotReady) Error() string {
	return fmt.Sprintf("association %s does not export now (it is not AVAILABLE); export resumes when it is", e.a.ID())
}

// admit says whether an entry under a (found: ok) with event ev is
// exported by auto-export: skip when it is not, an error when it must wait.
func admit(a *dra.Assoc, ok bool, ev ...api.EventType) (skip bool, err error) {
	switch {
	case !ok || a.Gone():
		return true, nil
	case !a.Serves():
		return false, errNotReady{a}
	}
	return !a.Exports(ev...), nil
}

// exportEntry does what je asks; skipped reports that nothing was
// exported (and nothing needs to be).
func (e *Exporter) exportEntry(ctx context.Context, je catalog.JournalEntry) (skipped bool, err error) {
	rel := keypath.FromCatalog(je.Path)
	switch je.Kind {
	case catalog.KindDeleted:
		return e.exportDelete(ctx, rel)
	case catalog.KindRename:
		return e.exportRename(ctx, je)
	}
	a, in, ok := e.assocFor(rel)
	ev := api.EventChanged
	if je.Kind == catalog.KindNew {
		ev = api.EventNew
	}
	if skip, err := admit(a, ok, ev); skip || err != nil {
		return skip, err
	}
	if held, err := e.cfg.Catalog.RenamesFrom(ctx, ancestors(je.Path, a.Dir), 1); err != nil {
		return false, err
	} else if len(held) > 0 {
		return false, errRenamePending
	}
	return e.exportPath(ctx, a, in, rel, "")
}

// ancestors returns catalog path p and its parents up to and including
// the association directory dir (store form, "." for the root).
func ancestors(p, dir string) []string {
	out := []string{p}
	for p != "" && p != dir {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
		out = append(out, p)
	}
	return out
}

// Export writes rel's current content and metadata to its association's
// repository now, whatever the association's AutoExportPolicy (export
// tasks, hsm archive). It does not touch the journal. exported is false
// when there was nothing to export (a file marked never_archive, a
// released file whose object already has its metadata, a special file).
func (e *Exporter) Export(ctx context.Context, rel string) (exported bool, err error) {
	a, in, ok := e.assocFor(rel)
	if !ok {
		return false, fmt.Errorf("export %s: not below any data repository association", rel)
	}
	if !a.Serves() {
		return false, fmt.Errorf("export %s: %w", rel, errNotReady{a})
	}
	if a.Access().Unsigned {
		return false, fmt.Errorf("export %s: %w", rel, ErrUnsigned)
	}
	skipped, err := e.exportPath(ctx, a, in, rel, "")
	return !skipped && err == nil, err
}

// exportPath writes the object of rel (in inside a) from its local
// content. fromKey, when set, is where the object is now (a rename): its
// metadata is carried over and a clean file is copied from it.
func (e *Exporter) exportPath(ctx context.Context, a *dra.Assoc, in, rel, fromKey string) (skipped bool, err error) {
	sta, err := e.cfg.Store.Lstat(rel)
	if gone(err) {
		return true, nil // a later entry covers what happened to it
	}
	if err != nil {
		return false, err
	}
	switch sta.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return e.putDir(ctx, a, in, rel, sta)
	case unix.S_IFLNK:
		return false, e.putSymlink(ctx, a, in, rel, sta)
	case unix.S_IFREG:
		return e.exportFile(ctx, a, in, rel, fromKey)
	}
	e.log.Debug("special file not exported", "path", rel)
	return true, nil
}

// gone reports an error saying the path no longer exists as it was.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

func (e *Exporter) keyFor(a *dra.Assoc, in string, k keypath.Kind) (string, error) {
	key, err := keypath.ToKey(a.Prefix, in, k)
	if err != nil {
		return "", permanent(keypath.CodeOf(err), err)
	}
	return key, nil
}

func attrsOf(st *unix.Stat_t) posixmeta.Attrs {
	return posixmeta.Attrs{
		Mode: st.Mode, UID: st.Uid, GID: st.Gid,
		Mtime: time.Unix(st.Mtim.Unix()), Atime: time.Unix(st.Atim.Unix()),
	}
}

// metadata is the user metadata of an exported object: POSIX headers for
// attrs, foreign metadata of prev kept (docs/semantics.md §4: ferry keeps the user metadata FSx drops).
func (e *Exporter) metadata(attrs posixmeta.Attrs, prev map[string]string) (map[string]string, error) {
	m, err := posixmeta.ForExport(attrs, e.cfg.Version, prev)
	if errors.Is(err, posixmeta.ErrMetadataTooLarge) {
		return nil, permanent(CodeMetadataTooLarge, err)
	}
	return m, err
}

// putDir writes the directory object of rel (in inside a) with its
// attributes. When the directory's object was under another key (it was
// renamed: store.DirXattr names the path), that object goes, unless a
// directory is at that path again, and the record is cleared (or names rel
// if the directory moved on meanwhile); a crash in between only does it
// again, since a directory object is rebuilt from the directory itself.
func (e *Exporter) putDir(ctx context.Context, a *dra.Assoc, in, rel string, sta unix.Stat_t) (bool, error) {
	key, err := e.keyFor(a, in, keypath.Dir)
	if err != nil {
		return false, err
	}
	if key == "" {
		return true, nil // the bucket root has no directory object
	}
	f, err := e.cfg.Store.OpenFile(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if gone(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	origin, err := e.cfg.Store.FileDirOrigin(f)
	if err != nil {
		return false, err
	}
	meta, err := e.metadata(attrsOf(&sta), nil)
	if err != nil {
		return false, err
	}
	unlock := e.keys.lock(a.Bucket, key)
	err = e.put(ctx, a.Bucket, key, "", meta)
	unlock()
	if err != nil || origin == "" {
		return false, err
	}
	if origin != rel {
		if err := e.dropDirObject(ctx, a, origin); err != nil {
			return false, err
		}
	}
	mu := e.cfg.Store.MoveLock()
	mu.RLock()
	defer mu.RUnlock()
	here, err := e.cfg.Store.At(rel, f)
	if err != nil {
		return false, err
	}
	if here {
		return false, e.cfg.Store.SetFileDirOrigin(f, "")
	}
	return false, e.cfg.Store.SetFileDirOrigin(f, rel)
}

// putSymlink writes a symlink object: file-permissions 0120777 (the link's
// own mode), body = the target. Symlinks carry no state xattr.
func (e *Exporter) putSymlink(ctx context.Context, a *dra.Assoc, in, rel string, sta unix.Stat_t) error {
	key, err := e.keyFor(a, in, keypath.File)
	if err != nil {
		return err
	}
	target, err := e.cfg.Store.Readlink(rel)
	if err != nil {
		return err
	}
	meta, err := e.metadata(attrsOf(&sta), nil)
	if err != nil {
		return err
	}
	return e.put(ctx, a.Bucket, key, target, meta)
}

// put writes a small object from memory (directory and symlink objects).
func (e *Exporter) put(ctx context.Context, bucket, key, body string, meta map[string]string) error {
	c := e.s3For(bucket, key)
	_, err := c.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), Metadata: meta,
	})
	if s3x.InvalidKey(err) {
		// The server can store no object under this key (MinIO refuses a
		// directory key whose last name has 254 or more bytes): retrying
		// cannot help; parked and reported, as a key over 1,024 bytes is.
		return permanent(CodeInvalidObjectName, c.Explain(err, "upload", bucket, key))
	}
	if err != nil {
		return c.Explain(err, "upload", bucket, key)
	}
	e.stats.objects.Add(1)
	e.stats.bytes.Add(int64(len(body)))
	return nil
}

// openForExport opens rel for reading without following a symlink and
// without touching its atime where the kernel lets us.
func (e *Exporter) openForExport(rel string) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	f, err := e.cfg.Store.OpenFile(rel, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = e.cfg.Store.OpenFile(rel, flags, 0)
	}
	return f, err
}

// exportFile exports regular file rel (in inside a) to its key. A file
// whose content the repository already has (clean, or released) only gets
// its metadata updated — and is copied there from wherever its object is
// (its Origin after a rename, see move.go; fromKey for a multiply linked
// file); anything else is uploaded from a stable snapshot (invariant 2, see
// package doc).
func (e *Exporter) exportFile(ctx context.Context, a *dra.Assoc, in, rel, fromKey string) (skipped bool, err error) {
	key, err := e.keyFor(a, in, keypath.File)
	if err != nil {
		return false, err
	}
	f, err := e.openForExport(rel)
	if gone(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	// A move cut short by a crash left its old object: remove it first.
	if err := e.dropStale(ctx, f, rel); err != nil {
		return false, err
	}
	skipped, err = e.exportOpen(ctx, a, f, rel, key, fromKey)
	if err != nil || skipped {
		return skipped, err
	}
	return false, e.dropStale(ctx, f, rel)
}

// exportOpen is exportFile for the file open as f, to key: it reads the
// version the export makes visible, then either writes the metadata of
// content the repository already holds (copyKnown) or uploads a snapshot
// (upload), and marks the file clean if its version did not move
// (markExported).
func (e *Exporter) exportOpen(ctx context.Context, a *dra.Assoc, f *os.File, rel, key, fromKey string) (skipped bool, err error) {
	unlock := e.keys.lock(a.Bucket, key)
	defer unlock()
	fd := int(f.Fd())
	var sta unix.Stat_t
	st, err := e.readVersion(f, fd, rel, &sta)
	if err != nil {
		return false, err
	}
	if st.Flags.Has(hsm.NoArchive) || hsm.CheckArchive(rel, st.Flags) != nil {
		return true, nil // never_archive, or released and lost: nothing to export
	}
	if err := unix.Fstat(fd, &sta); err != nil {
		return false, fmt.Errorf("export %s: %w", rel, err)
	}
	if sta.Size > MaxObjectSize {
		return false, permanent(CodeFileSizeTooLarge, fmt.Errorf("%s is %d bytes; S3 objects are at most 5 TiB", rel, sta.Size))
	}
	attrs := attrsOf(&sta)
	dst := home{a: a, path: rel, key: key}
	src, srcOK := e.homeOf(a, rel, key, &st, fromKey)
	if srcOK && (st.Flags.Has(hsm.Released) || (st.Flags.Has(hsm.Exists|hsm.Archived) && !st.Flags.Has(hsm.Dirty))) {
		done, skipped, err := e.copyKnown(ctx, f, rel, &st, src, dst, attrs)
		if done {
			return skipped, err
		}
	}
	prev, ctype, err := e.previousObject(ctx, &st, src, srcOK)
	if err != nil {
		return false, err
	}
	meta, err := e.metadata(attrs, prev)
	if err != nil {
		return false, err
	}
	moved := e.track(rel)
	defer e.inflight.Delete(rel)
	etag, err := e.upload(ctx, rel, fd, &sta, dst, meta, ctype, moved)
	if err != nil {
		return false, err
	}
	if !srcOK {
		src = dst // the old object is outside every association: nothing to drop
	}
	return false, e.markExported(f, rel, &sta, &st, src, dst, etag)
}

// readVersion is exportOpen's first step: it tells the mount the version
// is being read (Config.VersionRead), refuses a file an unseen writer has
// open, and returns the file's state, whose Version V is the version this
// export makes visible. It is read before the snapshot the upload takes,
// so any write after it bumps the version and the file stays dirty. sta
// gets the status of the file (f, descriptor fd).
func (e *Exporter) readVersion(f *os.File, fd int, rel string, sta *unix.Stat_t) (store.State, error) {
	if err := unix.Fstat(fd, sta); err != nil {
		return store.State{}, fmt.Errorf("export %s: %w", rel, err)
	}
	if e.cfg.VersionRead != nil {
		e.cfg.VersionRead(uint64(sta.Dev), sta.Ino)
	}
	if err := e.writerOpen(rel, sta); err != nil {
		return store.State{}, err
	}
	st, err := e.cfg.Store.FileState(f)
	switch {
	case errors.Is(err, store.ErrNoState):
		return store.State{}, nil
	case errors.Is(err, store.ErrCorruptState):
		return store.State{}, permanent(CodeCorruptState, err)
	case err != nil:
		return store.State{}, err
	}
	return st, nil
}

// copyKnown exports a file whose content the repository holds (clean, or
// released) at src: it writes the metadata (and moves the object on a
// rename) without moving the bytes. done is false when that object is
// gone or changed and the file is local: exportOpen then uploads it.
func (e *Exporter) copyKnown(ctx context.Context, f *os.File, rel string, st *store.State, src, dst home, attrs posixmeta.Attrs) (done, skipped bool, err error) {
	etag, ok, err := e.copyMeta(ctx, src.a.Bucket, src.key, dst.a.Bucket, dst.key, st.ETag, attrs)
	if err != nil {
		return true, false, err
	}
	if ok {
		err := e.placed(f, rel, st, src, dst, func(cur *store.State) error {
			if cur.ETag != st.ETag {
				return errMoveRaced
			}
			cur.ETag = etag
			return nil
		})
		if errors.Is(err, errMoveRaced) {
			e.log.Info("file's object moved by another export meanwhile", "path", rel)
			return true, true, nil
		}
		return true, false, err
	}
	if st.Flags.Has(hsm.Released) {
		// Made local since the state was read (a move's rescue, an
		// open for writing): the next attempt uploads that data.
		if cur, err := e.cfg.Store.FileState(f); err == nil && !cur.Flags.Has(hsm.Released) {
			return true, false, errDeferred
		}
		// Nothing local and the object is gone or changed: the
		// importer's business (lost_from_hsm or a re-import).
		e.log.Warn("released file's object is gone or changed; nothing to export", "path", rel, "bucket", src.a.Bucket, "key", src.key)
		return true, true, nil
	}
	return false, false, nil
}

// previousObject returns the user metadata and Content-Type of the object
// a re-exported file had at src, to carry its foreign metadata and
// Content-Type over (docs/semantics.md §4); none for a file the repository did
// not know, or whose object is gone. Cost: one HEAD per re-export.
func (e *Exporter) previousObject(ctx context.Context, st *store.State, src home, srcOK bool) (map[string]string, string, error) {
	if !st.Flags.Has(hsm.Exists) || !srcOK {
		return nil, "", nil
	}
	h, err := e.head(ctx, src.a.Bucket, src.key)
	if err == nil {
		return h.Metadata, aws.ToString(h.ContentType), nil
	}
	if !notFound(err) {
		return nil, "", err
	}
	return nil, "", nil
}

// upload uploads the file open as fd (status sta) to dst's key with meta
// and ctype, counting its bytes in moved, and returns the new object's
// ETag ("" when it cannot be read: a later release re-reads it).
func (e *Exporter) upload(ctx context.Context, rel string, fd int, sta *unix.Stat_t, dst home, meta map[string]string, ctype string, moved *atomic.Int64) (string, error) {
	err := e.cfg.Engine.With(e.cfg.S3.For(dst.a.Access())).Upload(ctx, transfer.UploadInput{
		// /proc/self/fd reopens exactly this inode: the upload stays inside
		// the store's openat2 confinement.
		Path:   fmt.Sprintf("/proc/self/fd/%d", fd),
		Bucket: dst.a.Bucket, Key: dst.key, Size: sta.Size, ModTime: time.Unix(sta.Mtim.Unix()),
		Metadata: meta, ContentType: ctype,
	}, func(n int64) {
		moved.Add(n)
		if e.cfg.Progress != nil {
			e.cfg.Progress(rel, n)
		}
	})
	if err != nil {
		return "", err
	}
	e.stats.objects.Add(1)
	e.stats.bytes.Add(sta.Size)
	// The upload does not return the new ETag; the state needs it for the
	// If-Match of later ranged reads once the file is released.
	etag := ""
	if h, err := e.head(ctx, dst.a.Bucket, dst.key); err == nil && aws.ToInt64(h.ContentLength) == sta.Size {
		etag = aws.ToString(h.ETag)
	} else {
		e.log.Warn("exported object's ETag unknown; a later release re-reads it", "path", rel, "key", dst.key, "err", err)
	}
	return etag, nil
}

// markExported is exportOpen's last step, after the upload of the file
// open as f whose state was st (version V) to dst with etag: the file is
// placed at dst (src's object dropped, see placed) and marked clean.
func (e *Exporter) markExported(f *os.File, rel string, sta *unix.Stat_t, st *store.State, src, dst home, etag string) error {
	// Invariant 1: a writer the mount cannot see may have changed the file
	// since V without moving the version; while one is open the file
	// stays dirty and its entry pending. One that opens after this check
	// bumps the version (and appends) after it: the update below then
	// finds a newer version, or the bump makes the file dirty again.
	if err := e.writerOpen(rel, sta); err != nil {
		return err
	}
	// Invariant 2: clean only if the version did not move since V.
	return e.placed(f, rel, st, src, dst, func(cur *store.State) error {
		flags, err := hsm.Exported(rel, cur.Flags, st.Version, cur.Version)
		if err != nil {
			return err
		}
		cur.Flags = flags
		if !flags.Has(hsm.Released) {
			cur.ETag, cur.Size = etag, sta.Size
		}
		return nil
	})
}

// writerOpen returns ErrWriterOpen while the mount reports a writer it
// cannot see on the inode of sta (Config.UnseenWriter).
func (e *Exporter) writerOpen(rel string, sta *unix.Stat_t) error {
	if e.cfg.UnseenWriter != nil && e.cfg.UnseenWriter(uint64(sta.Dev), sta.Ino) {
		return fmt.Errorf("export %s: %w", rel, ErrWriterOpen)
	}
	return nil
}

// track registers rel as being exported and returns its byte counter.
func (e *Exporter) track(rel string) *atomic.Int64 {
	c := new(atomic.Int64)
	e.inflight.Store(rel, c)
	return c
}

// Progress returns how many bytes the export of rel in flight has moved
// (hsm action: "ARCHIVE running (N bytes moved)"); ok is false when none
// runs.
func (e *Exporter) Progress(rel string) (moved int64, ok bool) {
	v, ok := e.inflight.Load(rel)
	if !ok {
		return 0, false
	}
	return v.(*atomic.Int64).Load(), true
}

func (e *Exporter) head(ctx context.Context, bucket, key string) (*s3.HeadObjectOutput, error) {
	c := e.s3For(bucket, key)
	h, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, c.Explain(err, "head", bucket, key)
	}
	return h, nil
}

func notFound(err error) bool {
	switch s3x.CodeOf(err) {
	case s3x.CodeNoSuchKey, "NotFound":
		return true
	}
	return false
}

// copyMeta makes dst the object at src (which must still have ETag etag,
// when given) with metadata for attrs, foreign metadata and content headers
// kept: a CopyObject with REPLACE, onto itself for a metadata change or to
// the new key for a rename. ok is false when src is gone or changed (the
// caller uploads instead). A metadata update that changes nothing sends
// nothing. Objects over 5 GiB cannot be copied in one request: a rename
// copies them in parts with their old metadata; an update in place is
// reported not done (ok false).
func (e *Exporter) copyMeta(ctx context.Context, srcBucket, src, bucket, dst, etag string, attrs posixmeta.Attrs) (newETag string, ok bool, err error) {
	h, err := e.head(ctx, srcBucket, src)
	if notFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	cur := aws.ToString(h.ETag)
	if etag != "" && trimQ(cur) != trimQ(etag) {
		return "", false, nil
	}
	meta, err := e.metadata(attrs, h.Metadata)
	if err != nil {
		return "", false, err
	}
	size := aws.ToInt64(h.ContentLength)
	inPlace := srcBucket == bucket && src == dst
	if inPlace && sameMeta(meta, h.Metadata) {
		return cur, true, nil
	}
	if size > transfer.MaxPartSize {
		if inPlace {
			e.log.Warn("metadata of an object over 5 GiB cannot be replaced in place", "bucket", bucket, "key", src)
			return "", false, nil
		}
		err := e.engineFor(bucket, dst).Copy(ctx, transfer.CopyInput{SrcBucket: srcBucket, SrcKey: src, DstBucket: bucket, DstKey: dst,
			Object: s3x.Object{Key: src, Size: size, ETag: trimQ(cur)}}, nil)
		if s3x.CodeOf(err) == s3x.CodePrecondition || notFound(err) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		e.stats.objects.Add(1)
		h2, err := e.head(ctx, bucket, dst)
		if err != nil {
			return "", false, err
		}
		return aws.ToString(h2.ETag), true, nil
	}
	out, err := e.s3For(bucket, dst).S3.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(dst),
		CopySource:         aws.String(copySource(srcBucket, src)),
		CopySourceIfMatch:  aws.String(cur),
		MetadataDirective:  types.MetadataDirectiveReplace,
		Metadata:           meta,
		ContentType:        h.ContentType,
		ContentEncoding:    h.ContentEncoding,
		ContentDisposition: h.ContentDisposition,
		ContentLanguage:    h.ContentLanguage,
		CacheControl:       h.CacheControl,
	})
	if err != nil {
		if c := s3x.CodeOf(err); c == s3x.CodePrecondition || c == s3x.CodeNoSuchKey {
			return "", false, nil
		}
		return "", false, e.s3For(bucket, dst).Explain(err, "copy", bucket, dst)
	}
	e.stats.objects.Add(1)
	if out.CopyObjectResult != nil && out.CopyObjectResult.ETag != nil {
		return aws.ToString(out.CopyObjectResult.ETag), true, nil
	}
	return cur, true, nil
}

func trimQ(s string) string { return strings.Trim(s, `"`) }

// sameMeta compares user metadata as S3 does: keys without regard to case.
func sameMeta(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	lb := make(map[string]string, len(b))
	for k, v := range b {
		lb[strings.ToLower(k)] = v
	}
	for k, v := range a {
		if w, ok := lb[strings.ToLower(k)]; !ok || w != v {
			return false
		}
	}
	return true
}

// copySource is the x-amz-copy-source value: bucket/key, URL-encoded.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return bucket + "/" + strings.Join(segs, "/")
}

// exportDelete removes the object of a deleted path — only when the
// association's policy includes DELETED.
func (e *Exporter) exportDelete(ctx context.Context, rel string) (bool, error) {
	a, in, ok := e.assocFor(rel)
	// Invariant 5: a local delete never deletes an object unless DELETED
	// is in the export policy. TestExportKinds ("Invariant 5") breaks this.
	if skip, err := admit(a, ok, api.EventDeleted); skip || err != nil {
		return skip, err
	}
	if in == "." {
		return true, nil // the association's own directory: never removed here
	}
	if _, err := e.cfg.Store.Lstat(rel); err == nil {
		return true, nil // created again since: its NEW entry follows
	}
	return false, e.deleteKeys(ctx, a, in)
}

// deleteKeys removes the object of in, as a file and as a directory
// object (the journal does not say which it was).
func (e *Exporter) deleteKeys(ctx context.Context, a *dra.Assoc, in string) error {
	var keys []string
	for _, k := range []keypath.Kind{keypath.File, keypath.Dir} {
		if key, err := keypath.ToKey(a.Prefix, in, k); err == nil && key != "" {
			keys = append(keys, key)
		}
	}
	return e.deleteBatch(ctx, a.Bucket, keys)
}

func (e *Exporter) deleteBatch(ctx context.Context, bucket string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	var first error
	err := e.engineFor(bucket, keys[0]).Delete(ctx, bucket, keys, func(key string, err error) {
		if err == nil {
			e.stats.deleted.Add(1)
		} else if s3x.InvalidKey(err) {
			// No object can have this key (a directory key of a name
			// at the server's length limit): nothing to delete.
			e.log.Debug("nothing to delete under a key the server refuses", "key", key, "err", err)
		} else if first == nil {
			first = err
		}
	})
	if err != nil {
		return err
	}
	return first
}
