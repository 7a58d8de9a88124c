package exporter

// Renames: where an object is, and how it moves.
//
// A file's object key is never derived from a name a later rename may
// already have changed. The file itself says where its object is
// (store.State.Origin, written by the mount before a rename and by this
// package after a move), so a move is resolved from the file's identity
// when it is applied:
//
//  1. the object is copied (clean or released file) or uploaded (local
//     changes) from the key of the origin to the key of the path the file
//     has when the export opens it;
//  2. one state update, under the store's MoveLock, takes the new ETag and
//     records where the object is now: no Origin if the file is still at
//     that path, that path otherwise (a rename happened meanwhile, and its
//     own journal entry moves the object on), and the origin's object as
//     Stale;
//  3. the stale object is removed — only if it still has the ETag it had
//     and no file in the store has it as its own — and Stale cleared.
//
// A crash after 1 leaves the origin in place and the export is redone; a
// crash after 2 leaves Stale, which the next export of the file finishes
// (the journal entry is still pending then). A RENAME entry of a
// directory walks the tree under the directory's current name and exports
// every file whose object is elsewhere, whatever chain of renames put it
// there; an entry whose new name is gone again is done, since the later
// rename's entry walks the later name. TestChainedDirectoryRenames,
// TestRenameDuringMove and the e2e model test break this.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// home is where an object is: a key in an association's bucket, and the
// store path the key belongs to.
type home struct {
	a    *dra.Assoc
	path string // store-relative; "" when only the key is known
	key  string
}

func (h home) same(o home) bool { return h.a.Bucket == o.a.Bucket && h.key == o.key }

// homeOf returns where the object of a file at rel (key in a) with state st
// is. fromKey, when set, is used for a file without an Origin (a multiply
// linked file renamed: see fusefs originBeforeRename). ok is false when the
// origin is outside every association (nothing to copy from).
func (e *Exporter) homeOf(a *dra.Assoc, rel, key string, st *store.State, fromKey string) (h home, ok bool) {
	switch {
	case st.Origin != "" && st.Origin != rel:
		ao, in, found := e.assocFor(st.Origin)
		if !found {
			return home{}, false
		}
		k, err := keypath.ToKey(ao.Prefix, in, keypath.File)
		if err != nil || k == "" {
			return home{}, false
		}
		return home{a: ao, path: st.Origin, key: k}, true
	case fromKey != "":
		return home{a: a, key: fromKey}, true
	}
	return home{a: a, path: rel, key: key}, true
}

// keyLocks serialises the writes and conditional deletes of one key within
// this process: a stale object is checked and removed while no export
// writes the same key.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

func (l *keyLocks) lock(bucket, key string) (unlock func()) {
	id := bucket + "\x00" + key
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	k := l.m[id]
	if k == nil {
		k = &keyLock{}
		l.m[id] = k
	}
	k.refs++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// errMoveRaced: another export of the same file moved its object first;
// nothing of this one is recorded.
var errMoveRaced = errors.New("the file's object was moved by another export meanwhile")

// placed records in f's state (file rel, state before read at the start of
// the export) that its content is now the object etag at key: Origin
// becomes "" if rel still names f, else rel; the object the content came
// from (src) becomes Stale when it is another key and may be removed. fn
// makes the rest of the update (flags, ETag). Held under the store's
// MoveLock, so no rename of the mount falls between the check and the
// update (store.MoveLock).
func (e *Exporter) placed(f *os.File, rel string, before *store.State, src, dst home, fn func(cur *store.State) error) error {
	mu := e.cfg.Store.MoveLock()
	mu.RLock()
	defer mu.RUnlock()
	here, err := e.cfg.Store.At(rel, f)
	if err != nil {
		return err
	}
	_, err = e.cfg.Store.UpdateFileState(f, func(cur *store.State) error {
		sameOrigin := cur.Origin == before.Origin ||
			(before.Origin == "" && cur.Origin == rel) || (before.Origin == rel && cur.Origin == "")
		if err := fn(cur); err != nil {
			return err
		}
		if here {
			cur.Origin = ""
		} else {
			cur.Origin = rel
		}
		if sameOrigin && cur.Stale == "" && before.Flags.Has(hsm.Exists) && !src.same(dst) && src.path != "" && e.mayRemove(src, dst) {
			cur.Stale, cur.StaleETag = src.path, before.ETag
		}
		e.log.Debug("object placed", "path", rel, "key", dst.key, "from", src.key, "here", here,
			"origin", cur.Origin, "stale", cur.Stale, "flags", cur.Flags)
		return nil
	})
	return err
}

// mayRemove says whether the object a file's content left (src, for dst)
// may be removed: within one association a move never keeps the old
// object (docs/semantics.md §4); out of another association only with DELETED
// in that association's policy (invariant 5).
func (e *Exporter) mayRemove(src, dst home) bool {
	if src.a.ID() == dst.a.ID() {
		return true
	}
	skip, err := admit(src.a, true, api.EventDeleted)
	return !skip && err == nil
}

// dropStale removes the stale object recorded in f's state (file rel) and
// clears the record. The object goes only if it still has the ETag the
// content had when it left and no file at its path has it as its own
// object (a file created there since and exported with the same bytes);
// otherwise it is someone else's now and stays.
func (e *Exporter) dropStale(ctx context.Context, f *os.File, rel string) error {
	st, err := e.cfg.Store.FileState(f)
	if err != nil || st.Stale == "" {
		return nil
	}
	if a, in, ok := e.assocFor(st.Stale); ok {
		if key, err := keypath.ToKey(a.Prefix, in, keypath.File); err == nil && key != "" {
			if err := e.removeIfOurs(ctx, a, key, st.Stale, st.StaleETag, f); err != nil {
				return err
			}
		}
	}
	_, err = e.cfg.Store.UpdateFileState(f, func(cur *store.State) error {
		if cur.Stale == st.Stale {
			cur.Stale, cur.StaleETag = "", ""
		}
		return nil
	})
	return err
}

// removeIfOurs deletes key (the object of path p, left by the content of
// f) if it still has etag and no other file at p owns it.
func (e *Exporter) removeIfOurs(ctx context.Context, a *dra.Assoc, key, p, etag string, f *os.File) error {
	unlock := e.keys.lock(a.Bucket, key)
	defer unlock()
	h, err := e.head(ctx, a.Bucket, key)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if etag == "" || trimQ(aws.ToString(h.ETag)) != trimQ(etag) {
		return nil // written again since: not the object the content left
	}
	if owned, err := e.ownedAt(p, f, etag); err != nil || owned {
		return err
	}
	c := e.cfg.S3.For(a.Access())
	_, err = c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(key), IfMatch: h.ETag})
	if err != nil && !notFound(err) && s3x.CodeOf(err) != s3x.CodePrecondition {
		return c.Explain(err, "delete", a.Bucket, key)
	}
	if err == nil {
		e.stats.deleted.Add(1)
		e.log.Debug("stale object deleted", "key", key, "path", p)
	}
	return nil
}

// ownedAt reports whether a file at p has the object of p's key (with
// etag) as its own: f itself (renamed back, or another name of it), or
// another file exported there since.
func (e *Exporter) ownedAt(p string, f *os.File, etag string) (bool, error) {
	sta, err := e.cfg.Store.Lstat(p)
	if gone(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if sta.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, nil
	}
	if mine, err := e.cfg.Store.At(p, f); err != nil || mine {
		// The file is at p again (renamed back), or p is another name
		// of it (a hard link): the object of p's key is its own.
		return mine, err
	}
	st, err := e.cfg.Store.GetState(p)
	if errors.Is(err, store.ErrNoState) || gone(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Flags.Has(hsm.Exists) && (st.Origin == "" || st.Origin == p) && trimQ(st.ETag) == trimQ(etag), nil
}

// exportRename applies a RENAME entry: the object(s) of what is now at
// je.Path move there from wherever they are.
func (e *Exporter) exportRename(ctx context.Context, je catalog.JournalEntry) (bool, error) {
	newRel, oldRel := keypath.FromCatalog(je.Path), keypath.FromCatalog(je.OldPath)
	// The old name's upload in flight lands before the file moves on, so
	// the object it writes is the one the move finds (through the Origin
	// that upload records). Only while nothing is at the old name: an
	// entry there then is of the file renamed; a file at the old name is
	// another one, whose upload waits for this move (errRenamePending).
	if _, err := e.cfg.Store.Lstat(oldRel); gone(err) {
		if p, err := e.cfg.Catalog.Pending(ctx, je.OldPath, "", 1); err != nil {
			return false, err
		} else if len(p) == 1 && p[0].Path == je.OldPath && p[0].Owner != "" && p[0].ReadyAt.After(time.Now()) {
			return false, errDeferred
		}
	}
	an, inNew, okN := e.assocFor(newRel)
	ao, inOld, okO := e.assocFor(oldRel)
	sameAssoc := okN && okO && an.ID() == ao.ID()
	if skip, err := admit(an, okN, api.EventNew, api.EventChanged); err != nil {
		return false, err
	} else if skip {
		if !sameAssoc {
			if err := e.localizeLeavers(ctx, newRel, oldRel); err != nil {
				return false, err
			}
			return e.leftAssoc(ctx, ao, okO, inOld, oldRel)
		}
		return true, nil
	}
	sta, err := e.cfg.Store.Lstat(newRel)
	if gone(err) {
		return e.movedOn(ctx, je)
	}
	if err != nil {
		return false, err
	}
	var skipped bool
	switch sta.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := e.moveTree(ctx, an, inNew, newRel, sta); err != nil {
			return false, err
		}
		if sameAssoc {
			err = e.dropOldPrefix(ctx, an, inOld, oldRel, newRel)
		}
	case unix.S_IFREG:
		unlock, err := e.rescue(ctx, an, newRel)
		if err != nil {
			return false, err
		}
		defer unlock()
		fromKey := ""
		if sta.Nlink > 1 && sameAssoc {
			fromKey, _ = keypath.ToKey(an.Prefix, inOld, keypath.File)
		}
		skipped, err = e.exportPath(ctx, an, inNew, newRel, fromKey)
		if err == nil && skipped && e.renamedSince(newRel, sta) {
			return e.movedOn(ctx, je)
		}
		if err == nil && fromKey != "" {
			err = e.dropOldName(ctx, an, fromKey, oldRel)
		}
	case unix.S_IFLNK:
		unlock, err := e.rescue(ctx, an, newRel)
		if err != nil {
			return false, err
		}
		defer unlock()
		skipped, err = e.exportPath(ctx, an, inNew, newRel, "")
		if err == nil && skipped && e.renamedSince(newRel, sta) {
			return e.movedOn(ctx, je)
		}
		if err == nil && sameAssoc {
			if k, kerr := keypath.ToKey(an.Prefix, inOld, keypath.File); kerr == nil && k != "" {
				err = e.dropOldName(ctx, an, k, oldRel)
			}
		}
	default:
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !sameAssoc {
		if _, err := e.leftAssoc(ctx, ao, okO, inOld, oldRel); err != nil {
			return false, err
		}
	}
	return skipped, nil
}

// movedOn settles RENAME je whose file (or directory) was renamed again,
// or removed, before its move ran: the later entry moves what is below
// the later name, and files carry where their objects are. This one moved
// nothing, so the objects are still under the old name: the later renames
// from this name are made renames from there (catalog ForwardRenames), so
// that their moves keep the key of the old name safe (rescue). A rename
// of the new name begun but not journaled yet (the mount appends its
// RENAME after the store renamed) would come after the forwarding: the
// entry waits for it.
func (e *Exporter) movedOn(ctx context.Context, je catalog.JournalEntry) (bool, error) {
	if _, begun, err := e.begunFrom(ctx, je.Path); err != nil {
		return false, err
	} else if begun {
		return false, errDeferred
	}
	return true, e.cfg.Catalog.ForwardRenames(ctx, je.Path, je.OldPath)
}

// renamedSince reports whether the file found at rel (sta) is no longer
// there: an export that skipped it because it was gone when opened (the
// e2e swap: mv a t was exported while mv t b ran, and completing it
// without forwarding left key a unprotected) moved nothing.
func (e *Exporter) renamedSince(rel string, sta unix.Stat_t) bool {
	now, err := e.cfg.Store.Lstat(rel)
	return gone(err) || (err == nil && (now.Ino != sta.Ino || now.Dev != sta.Dev))
}

// leftAssoc handles the old side of a rename out of association ao: its
// objects are removed only with DELETED in its policy (invariant 5), and
// only while nothing local is at the old name again.
func (e *Exporter) leftAssoc(ctx context.Context, ao *dra.Assoc, ok bool, inOld, oldRel string) (bool, error) {
	if skip, err := admit(ao, ok, api.EventDeleted); skip || err != nil {
		return skip, err
	}
	if _, err := e.cfg.Store.Lstat(oldRel); err == nil {
		return true, nil // made again since: its own entries cover it
	}
	return false, e.deleteKeys(ctx, ao, inOld)
}

// dropOldName removes key, the object of old name oldRel of a symlink or
// multiply linked file that moved, unless something is at oldRel again.
func (e *Exporter) dropOldName(ctx context.Context, a *dra.Assoc, key, oldRel string) error {
	unlock := e.keys.lock(a.Bucket, key)
	defer unlock()
	if _, err := e.cfg.Store.Lstat(oldRel); err == nil || !gone(err) {
		return err // present again (nil): its own entries cover it
	}
	return e.deleteBatch(ctx, a.Bucket, []string{key})
}

// moveTree exports what a directory rename (or a move into association a)
// changed for the tree now at newRel: the directory objects under their
// new names, symlinks, and every regular file whose object is not under
// its current name's key (an Origin) or that has a stale object to remove.
// Files with unexported content are left to their own entries (the rename
// moved them along), which upload them and drop their old objects. The
// walk holds one batch of entries per level.
func (e *Exporter) moveTree(ctx context.Context, a *dra.Assoc, in, rel string, sta unix.Stat_t) error {
	if _, err := e.putDir(ctx, a, in, rel, sta); err != nil {
		return err
	}
	r, err := e.cfg.Store.Readdir(rel)
	if gone(err) {
		return nil // renamed again: the later entry walks it
	}
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		ents, err := r.Next(256)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if gone(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, ent := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			p, pin := keypath.Join(rel, ent.Name), keypath.Join(in, ent.Name)
			if err := e.moveEntry(ctx, a, pin, p); err != nil {
				if gone(err) {
					continue
				}
				if pe := (*PermanentError)(nil); errors.As(err, &pe) {
					// Cannot be helped by retrying the whole tree (a name
					// S3 cannot hold): counted and logged, as a parked
					// entry would be.
					e.stats.fail(pe.Code)
					e.log.Error("object not moved", "path", p, "code", pe.Code, "err", err)
					continue
				}
				return fmt.Errorf("move %s: %w", p, err)
			}
		}
	}
}

// moveEntry is moveTree's step for one entry p (pin inside a).
func (e *Exporter) moveEntry(ctx context.Context, a *dra.Assoc, pin, p string) error {
	sta, err := e.cfg.Store.Lstat(p)
	if err != nil {
		return err
	}
	switch sta.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return e.moveTree(ctx, a, pin, p, sta)
	case unix.S_IFLNK:
		unlock, err := e.rescue(ctx, a, p)
		if err != nil {
			return err
		}
		defer unlock()
		return e.putSymlink(ctx, a, pin, p, sta)
	case unix.S_IFREG:
		st, err := e.cfg.Store.GetState(p)
		switch {
		case errors.Is(err, store.ErrNoState) || err == nil && hsm.Unexported(st.Flags):
			// Content the repository lacks: its own entry (NEW or CHANGED,
			// moved along by the rename) uploads it — unless it has none
			// any more (an export that found the old name gone ended it):
			// then it goes now.
			if pending, err := e.cfg.Catalog.Pending(ctx, p, "", 1); err != nil {
				return err
			} else if len(pending) == 1 && pending[0].Path == p {
				return nil
			}
		case err != nil:
			return err
		case (st.Origin == "" || st.Origin == p) && st.Stale == "":
			return nil // nothing to move
		}
		unlock, err := e.rescue(ctx, a, p)
		if err != nil {
			return err
		}
		defer unlock()
		_, err = e.exportPath(ctx, a, pin, p, "")
		return err
	}
	return nil
}

// dropOldPrefix removes, below the old directory's key prefix, the
// directory objects and symlinks whose local entries moved (nothing is at
// their old path any more, and the same kind of entry is at the new one).
// Regular files' objects are never removed here: each file knows where its
// object is, and its move drops the old one.
func (e *Exporter) dropOldPrefix(ctx context.Context, a *dra.Assoc, inOld, oldRel, newRel string) error {
	oldKey, err := keypath.ToKey(a.Prefix, inOld, keypath.Dir)
	if err != nil || oldKey == "" {
		return nil
	}
	if _, err := e.cfg.Store.Lstat(oldRel); err == nil {
		return nil // a directory is there again: its objects are its own
	}
	var batch []string
	err = e.cfg.S3.For(a.Access()).List(ctx, a.Bucket, s3x.ListOptions{Prefix: oldKey}, func(o s3x.Object) error {
		suffix := o.Key[len(oldKey):]
		isDir := suffix == "" || suffix[len(suffix)-1] == '/'
		sub, _, err := keypath.ToPath(oldKey, o.Key)
		if err != nil && suffix != "" {
			return nil
		}
		if suffix != "" {
			if _, err := e.cfg.Store.Lstat(keypath.Join(oldRel, sub)); err == nil {
				return nil
			}
			now, err := e.cfg.Store.Lstat(keypath.Join(newRel, sub))
			if err != nil {
				return nil
			}
			kind := now.Mode & unix.S_IFMT
			if !(isDir && kind == unix.S_IFDIR) && !(!isDir && kind == unix.S_IFLNK) {
				return nil
			}
		}
		batch = append(batch, o.Key)
		e.log.Debug("old prefix object deleted", "key", o.Key)
		if len(batch) == 1000 {
			err := e.deleteBatch(ctx, a.Bucket, batch)
			batch = batch[:0]
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return e.deleteBatch(ctx, a.Bucket, batch)
}

// dropDirObject removes the directory object of origin, which a directory
// of association a left by a rename: only if the move may remove it
// (mayRemove) and no directory is at origin (renamed back, or made there
// again: the object is, or will be, its own).
func (e *Exporter) dropDirObject(ctx context.Context, a *dra.Assoc, origin string) error {
	ao, in, ok := e.assocFor(origin)
	if !ok || !e.mayRemove(home{a: ao}, home{a: a}) {
		return nil
	}
	key, err := keypath.ToKey(ao.Prefix, in, keypath.Dir)
	if err != nil || key == "" {
		return nil
	}
	unlock := e.keys.lock(ao.Bucket, key)
	defer unlock()
	if sta, err := e.cfg.Store.Lstat(origin); err == nil && sta.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	} else if err != nil && !gone(err) {
		return err
	}
	c := e.cfg.S3.For(ao.Access())
	_, err = c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(ao.Bucket), Key: aws.String(key)})
	if err != nil && !notFound(err) {
		return c.Explain(err, "delete", ao.Bucket, key)
	}
	if err == nil {
		e.stats.deleted.Add(1)
		e.log.Debug("directory object deleted", "key", key, "origin", origin)
	}
	return nil
}

// rescue makes writing the key of p (a file or symlink a move is about to
// put there, in a) safe for the renamed released files whose data is
// still only under that key: the pending RENAMEs from p or one of its
// parents name where such a file is now; each one still released with
// its object at p is made local first (Config.Restore), so its own move
// later uploads its data instead of copying an object this write
// replaced. Without Restore the write waits for those moves
// (errRenamePending). Files the repository has elsewhere, or with their
// data local, need nothing: their moves copy with the ETag they expect,
// and upload when the copy finds another object.
//
// The returned unlock ends the move: moves of released files, and moves
// that found pending renames from their key, run one at a time in this
// exporter (Exporter.rmu), so a rescue never restores a file whose own
// move is copying or dropping the same object at that moment (the e2e
// swap lost a file that way).
func (e *Exporter) rescue(ctx context.Context, a *dra.Assoc, p string) (unlock func(), err error) {
	cp := keypath.ToCatalog(p)
	pending, err := e.cfg.Catalog.RenamesFrom(ctx, ancestors(cp, a.Dir), 100)
	if err != nil {
		return func() {}, err
	}
	if st, err := e.cfg.Store.GetState(p); len(pending) == 0 && (err != nil || !st.Flags.Has(hsm.Released)) {
		return func() {}, nil
	}
	e.rmu.Lock()
	unlock = e.rmu.Unlock
	// The renames may change while they are walked: the mount appends
	// mv t b as RENAME(b ← a) in place of a waiting RENAME(t ← a), so the
	// walk of t finds nothing, and the file is found by walking the
	// renames as they are now. Until two reads agree; a journal that never
	// settles makes the move wait.
	for range 8 {
		if err := e.rescueFrom(ctx, a, p, cp, pending); err != nil {
			unlock()
			return func() {}, err
		}
		again, err := e.cfg.Catalog.RenamesFrom(ctx, ancestors(cp, a.Dir), 100)
		if err != nil {
			unlock()
			return func() {}, err
		}
		if sameRenames(pending, again) {
			return unlock, nil
		}
		pending = again
	}
	unlock()
	return func() {}, errDeferred
}

// sameRenames reports whether two reads of the pending renames found the
// same ones.
func sameRenames(x, y []catalog.JournalEntry) bool {
	return slices.EqualFunc(x, y, func(a, b catalog.JournalEntry) bool {
		return a.Path == b.Path && a.OldPath == b.OldPath && a.Seq == b.Seq
	})
}

// rescueFrom is rescue's work for the pending renames from p's key.
func (e *Exporter) rescueFrom(ctx context.Context, a *dra.Assoc, p, cp string, pending []catalog.JournalEntry) error {
	for _, r := range pending {
		q, err := e.follow(ctx, a, r.Path+cp[len(r.OldPath):]) // where the file renamed from p is now
		if err != nil {
			return err
		}
		st, err := e.cfg.Store.GetState(q)
		if errors.Is(err, store.ErrNoState) || gone(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !st.Flags.Has(hsm.Released) || st.Origin != p {
			continue
		}
		if e.cfg.Restore == nil {
			return errRenamePending
		}
		e.log.Info("renamed released file made local before its old key is written", "path", q, "key_of", p)
		if err := e.cfg.Restore(ctx, q); err != nil {
			return fmt.Errorf("make %s local before %s is written: %w", q, p, err)
		}
	}
	return nil
}

// follow returns the store path of what is now at catalog path cp, or at
// the end of the pending renames from it: a file renamed again before the
// first rename's move ran is under the later name (mv a t; mv t b leaves
// RENAME(t ← a) and RENAME(b ← t) when the first was already claimed). A
// rename made but not journaled yet is followed through its move record.
func (e *Exporter) follow(ctx context.Context, a *dra.Assoc, cp string) (string, error) {
	for range 16 { // a bound: each hop is a rename made since
		if _, err := e.cfg.Store.Lstat(keypath.FromCatalog(cp)); !gone(err) {
			break
		}
		next, err := e.renameFrom(ctx, a, cp)
		if err != nil {
			return "", err
		}
		if next == "" {
			break
		}
		cp = next
	}
	return keypath.FromCatalog(cp), nil
}

// renameFrom returns where the rename of catalog path cp (or of a parent)
// took it, "" when none is known: a pending RENAME from it, else the move
// record of a rename made in the store and not journaled yet, else —
// read again — a RENAME journaled meanwhile. The mount's append adds the
// RENAME and removes the record in one transaction, so a record gone when
// the records are read means its RENAME is there for the second read of
// the journal (one read of each could miss both: the e2e swap lost A
// so). A journaled rename comes first: the record may be of another file
// at that name since.
func (e *Exporter) renameFrom(ctx context.Context, a *dra.Assoc, cp string) (string, error) {
	journaled := func() (string, error) {
		next, err := e.cfg.Catalog.RenamesFrom(ctx, ancestors(cp, a.Dir), 1)
		if err != nil || len(next) == 0 {
			return "", err
		}
		return next[0].Path + cp[len(next[0].OldPath):], nil
	}
	if to, err := journaled(); err != nil || to != "" {
		return to, err
	}
	if to, ok, err := e.begunFrom(ctx, cp); err != nil || ok {
		return to, err
	}
	return journaled()
}

// begunFrom returns where catalog path cp went by a rename the mount has
// made in the store but not journaled yet (it appends its RENAME after the
// store renamed; the move record says where the name went meanwhile), of
// cp or of one of its parents; the latest such record wins.
func (e *Exporter) begunFrom(ctx context.Context, cp string) (string, bool, error) {
	moves, err := e.cfg.Catalog.Moves(ctx)
	if err != nil {
		return "", false, err
	}
	to, ok := "", false
	for _, m := range moves {
		if _, below := keypath.Within(m.From, cp); below {
			to, ok = m.To+cp[len(m.From):], true
		}
	}
	return to, ok, nil
}

// localizeLeavers makes local every released file that a rename took from
// oldRel to newRel (a file, or the files below a directory) where nothing
// will copy its object: outside every association, or into one that does
// not export. Its data is only in the object under its origin's key, and
// nothing keeps that key for it any more: the old association's DELETED
// removes it (leftAssoc, next), and a new file at the old name would
// replace it. Without Config.Restore the move waits (errRenamePending).
func (e *Exporter) localizeLeavers(ctx context.Context, newRel, oldRel string) error {
	one := func(p string) error {
		st, err := e.cfg.Store.GetState(p)
		if errors.Is(err, store.ErrNoState) || gone(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, from := keypath.Within(oldRel, st.Origin); !st.Flags.Has(hsm.Released) || st.Origin == "" || !from {
			return nil
		}
		if e.cfg.Restore == nil {
			return errRenamePending
		}
		e.log.Info("released file moved out of its association made local", "path", p, "origin", st.Origin)
		if err := e.cfg.Restore(ctx, p); err != nil {
			return fmt.Errorf("make %s local before the objects of %s go: %w", p, oldRel, err)
		}
		return nil
	}
	sta, err := e.cfg.Store.Lstat(newRel)
	if gone(err) {
		return nil // moved on: the later rename's entry sees it
	}
	if err != nil {
		return err
	}
	switch sta.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return one(newRel)
	case unix.S_IFDIR:
		return e.cfg.Store.WalkBelow(ctx, newRel, func(p string, typ uint32) error {
			if typ != unix.S_IFREG {
				return nil
			}
			return one(p)
		})
	}
	return nil
}
