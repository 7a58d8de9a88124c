package tasks

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"golang.org/x/sys/unix"
)

// export is EXPORT_TO_REPOSITORY: it exports what changed since the last
// export under each path (docs/semantics.md §4: files that existed before the
// association included).
//
//   - A regular file is exported when its state says the repository lacks
//     its content (hsm.NeedsExport: dirty, or no state at all — never
//     exported). Clean archived files and released stubs are skipped and not
//     counted; never_archive files too.
//   - A clean file with several hard links is checked like a directory: the
//     state is the inode's, so exporting one name leaves the others clean
//     though their keys may have no object.
//   - A directory or symlink carries no state (Linux refuses user xattrs on
//     symlinks, and directories get none), so its object is checked with a
//     HEAD: it is exported when the object is missing or its POSIX headers
//     (mode, owner, group, mtime) differ from the local ones. The
//     association's own directory has no object.
//
// Known gap: a chmod/chown/utimes of a clean file leaves it clean (the state
// has no "metadata changed" bit), so only auto-export with CHANGED carries
// such a change; the task does not see it.
func (j *job) export() error {
	as, roots, err := j.roots()
	if err != nil {
		return err
	}
	j.forEach(roots, func(ctx context.Context, e entry) {
		a, in, ok := as.Holder(e.rel)
		if !ok || a.Access().Unsigned {
			// An unsigned association exports nothing (a task naming a
			// path in one is refused at create): a task over a wider
			// path passes over it.
			return
		}
		switch e.typ {
		case unix.S_IFREG:
			st, err := j.r.cfg.Store.GetState(e.rel)
			switch {
			case errors.Is(err, store.ErrNoState):
			case errors.Is(err, unix.ENOENT):
				return // gone since the walk saw it
			case err == nil:
				if hsm.NeedsExport(st.Flags) {
					break
				}
				// The state is the inode's: of several hard links, the
				// first exported leaves the others clean without an
				// object of their own. Those are checked like
				// directories.
				if !st.Flags.Has(hsm.Exists|hsm.Archived) || st.Flags&(hsm.Released|hsm.NoArchive) != 0 {
					return
				}
				if lst, err := j.r.cfg.Store.Lstat(e.rel); err != nil || lst.Nlink < 2 {
					return
				}
				if same, err := j.objectCurrent(ctx, a, in, e); err != nil {
					j.done(err, e.rel, 0)
					return
				} else if same {
					return
				}
			}
			// A corrupt state is exported too: the exporter reports it.
		case unix.S_IFDIR, unix.S_IFLNK:
			if in == "." {
				return
			}
			if same, err := j.objectCurrent(ctx, a, in, e); err != nil {
				j.done(err, e.rel, 0)
				return
			} else if same {
				return
			}
		default:
			return // sockets, fifos, devices: nothing S3 can hold
		}
		exported, err := j.exportSettled(ctx, e.rel)
		if exported || err != nil {
			j.done(err, e.rel, 0)
		}
	})
	return nil
}

// changeRetries bounds the retries of a file that changes while it is
// uploaded; Config.ChangeBackoff is the wait before the first, doubled for
// each next one (by default 0.1 + 0.2 + 0.4 + 0.8 s: a file rewritten now
// and then gets exported, one rewritten all the time fails the task after
// ~1.5 s plus five uploads).
const changeRetries = 4

// exportSettled exports rel and, while its upload fails because the file
// changed under it (transfer.ErrChanged) or a writer the mount cannot see
// has it open (exporter.ErrWriterOpen), tries again after a short backoff,
// at most changeRetries times: the task exports what it can, and only a
// file that keeps changing is a failure (FileChanged, FileInUse). A change
// after a successful export is auto-export's business, not the task's. A
// cancel of the task stops the retries (the last error counts).
func (j *job) exportSettled(ctx context.Context, rel string) (bool, error) {
	delay := j.r.cfg.ChangeBackoff
	for retry := 1; ; retry++ {
		exported, err := j.r.cfg.Exporter.Export(ctx, rel)
		if retry > changeRetries || !(errors.Is(err, transfer.ErrChanged) || errors.Is(err, exporter.ErrWriterOpen)) {
			return exported, err
		}
		j.r.log.Debug("file changed during its export; retrying", "task", j.task.TaskId, "path", rel, "retry", retry, "in", delay, "err", err)
		if j.r.cfg.OnRetry != nil {
			j.r.cfg.OnRetry(rel, retry)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return exported, err
		case <-j.feed.Done():
			t.Stop()
			return exported, err
		}
		delay *= 2
	}
}

// objectCurrent reports whether the object of directory or symlink e has
// the local POSIX attributes already.
func (j *job) objectCurrent(ctx context.Context, a *dra.Assoc, in string, e entry) (bool, error) {
	if j.r.cfg.S3 == nil {
		return false, nil
	}
	kind := keypath.File // regular files (hard links) and symlinks
	if e.typ == unix.S_IFDIR {
		kind = keypath.Dir
	}
	key, err := keypath.ToKey(a.Prefix, in, kind)
	if err != nil {
		return false, err
	}
	st, err := j.r.cfg.Store.Lstat(e.rel)
	if err != nil {
		return false, err
	}
	want, err := posixmeta.Encode(posixmeta.Attrs{
		Mode: st.Mode, UID: st.Uid, GID: st.Gid,
		Mtime: time.Unix(st.Mtim.Unix()), Atime: time.Unix(st.Atim.Unix()),
	}, "")
	if err != nil {
		return false, nil // let the export report it
	}
	c := j.r.cfg.S3.For(a.Access())
	h, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(key)})
	if err != nil {
		xerr := c.Explain(err, "head", a.Bucket, key)
		if c := s3x.CodeOf(xerr); c == "NotFound" || c == s3x.CodeNoSuchKey {
			return false, nil
		}
		return false, xerr
	}
	for _, k := range []string{posixmeta.KeyPermissions, posixmeta.KeyOwner, posixmeta.KeyGroup, posixmeta.KeyMtime} {
		if h.Metadata[k] != want[k] {
			return false, nil
		}
	}
	if e.typ == unix.S_IFREG {
		return aws.ToInt64(h.ContentLength) == st.Size, nil
	}
	if e.typ == unix.S_IFLNK {
		// A symlink's target is its body: recreating a link gives it a new
		// mtime, so equal headers mean the same link unless the size moved.
		target, err := j.r.cfg.Store.Readlink(e.rel)
		if err != nil {
			return false, err
		}
		return aws.ToInt64(h.ContentLength) == int64(len(target)), nil
	}
	return true, nil
}
