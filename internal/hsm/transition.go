package hsm

import (
	"errors"
	"fmt"
)

// The transitions below are pure: they take a file's flags (and what else
// the rule needs) and return the new flags or a typed *Error saying why the
// operation is refused. Persisting the result (xattrs, catalog) is the
// caller's job. Every result passes Flags.Check when the input does.
//
//	new local file                 0x00 (none), until exported — as in Lustre
//	Imported  (stub from object)   released exists archived
//	Fetched   (every chunk local)  exists archived
//	LocalWrite on an exported file + dirty   (a never-exported file stays
//	                                          none: !exists already means
//	                                          "not in the repository")
//	Truncated (to size 0)          − released, + dirty if exists
//	Exported  (content version v)  + exists archived; − dirty only if v is
//	                               the current version, else + dirty
//	Release                        + released; only if archived, not dirty,
//	                               not never_release, not open
//	Reimport  (object CHANGED)     released exists archived (+ user flags);
//	                               refused for unexported local content
//	Vanished  (object DELETED)     + lost_from_hsm if released, else
//	                               − exists archived dirty
//
// Invariant 6 (docs/invariants.md: an import never discards unexported
// local changes) is kept by Reimport, which refuses whenever Unexported is
// true.

// Version identifies a file's content, like Lustre's data_version: it
// changes with every local modification, so an exporter can tell whether
// the snapshot it uploaded is still the file's content.
type Version uint64

// Sentinel reasons; every *Error wraps one, so errors.Is works.
var (
	ErrNotArchived = errors.New("file is not archived (the repository has no copy of it yet)")
	ErrDirty       = errors.New("file has changes not yet exported (dirty)")
	ErrLocalOnly   = errors.New("file exists only locally (never exported)")
	ErrNoRelease   = errors.New("file is marked never_release")
	ErrNoArchive   = errors.New("file is marked never_archive")
	ErrBusy        = errors.New("file is open")
	ErrLost        = errors.New("its object is gone from the repository (lost_from_hsm)")
	ErrReleased    = errors.New("its data is not local (released)")
)

// Error is a refused transition: "cannot <Op> <Path>: <reason>; <what to do>".
type Error struct {
	Op    string // "release", "restore", "archive", "write", "import"
	Path  string
	Flags Flags // the state that caused the refusal
	Err   error // one of the Err* sentinels
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	msg := fmt.Sprintf("cannot %s %s: %v", e.Op, e.Path, e.Err)
	if h := e.hint(); h != "" {
		msg += "; " + h
	}
	return msg
}

func (e *Error) hint() string {
	p := e.Path
	switch e.Err {
	case ErrNotArchived:
		return "run ferry hsm archive " + p + " first"
	case ErrDirty:
		if e.Op == "import" {
			return "the local changes are kept and the repository version is not imported over them"
		}
		return "run ferry hsm archive " + p + " or wait for export"
	case ErrLocalOnly:
		return "the local file is kept and the repository version is not imported over it"
	case ErrNoRelease:
		return "run ferry hsm clear --norelease " + p + " to allow it"
	case ErrNoArchive:
		return "run ferry hsm clear --noarchive " + p + " to allow it"
	case ErrBusy:
		return "close it and retry"
	case ErrLost:
		return "its data cannot be fetched; restore the object in the repository, or delete the file"
	case ErrReleased:
		return "restore it first (ferry hsm restore " + p + ")"
	}
	return ""
}

func refuse(op, path string, f Flags, err error) (Flags, error) {
	return f, &Error{Op: op, Path: path, Flags: f, Err: err}
}

// Unexported reports whether the file holds local content the repository
// does not have: it is dirty, or it was never exported. Such a file must
// never be overwritten or removed by an import (invariant 6).
func Unexported(f Flags) bool {
	return f.Has(Dirty) || !f.Has(Exists)
}

// NeedsExport reports whether exporting the file would change the
// repository: its content is unexported and it may be archived.
func NeedsExport(f Flags) bool {
	return Unexported(f) && !f.Has(NoArchive)
}

// Imported is the state of a file just created from an object: a stub.
func Imported() Flags { return Released | Exists | Archived }

// Fetched is the state once every chunk of a released file is local: the
// file is no longer released. A file that is not released is returned as
// it is. A lost file cannot be fetched.
func Fetched(path string, f Flags) (Flags, error) {
	if !f.Has(Released) {
		return f, nil
	}
	if f.Has(Lost) {
		return refuse("restore", path, f, ErrLost)
	}
	return f &^ Released, nil
}

// CheckRestore says whether the data of a released file can be fetched
// (hsm_restore, or a read). Fetching a file that is not released is a no-op.
func CheckRestore(path string, f Flags) error {
	if f.Has(Released | Lost) {
		_, err := refuse("restore", path, f, ErrLost)
		return err
	}
	return nil
}

// LocalWrite is the state after a local write (or any content change but a
// truncation to size 0) of a file whose data is local. A file that was
// exported becomes dirty. A file never exported stays as it is: it shows
// (0x00000000) until exported, as in Lustre, and Unexported already holds.
// A released file must be restored first.
func LocalWrite(path string, f Flags) (Flags, error) {
	if f.Has(Released) {
		return refuse("write", path, f, ErrReleased)
	}
	if f.Has(Exists) {
		f |= Dirty
	}
	return f, nil
}

// Truncated is the state after a truncation to size 0 (open with O_TRUNC):
// whatever was not local no longer matters, so a released file needs no
// restore; lost_from_hsm goes with the data it described.
func Truncated(f Flags) Flags {
	f &^= Released | Lost
	if f.Has(Exists) {
		f |= Dirty
	}
	return f
}

// CheckArchive says whether the file may be exported (hsm_archive, or the
// export of a journal entry).
func CheckArchive(path string, f Flags) error {
	var err error
	switch {
	case f.Has(NoArchive):
		_, err = refuse("archive", path, f, ErrNoArchive)
	case f.Has(Released | Lost):
		_, err = refuse("archive", path, f, ErrLost)
	}
	return err
}

// Exported is the state after the content at version exported was written
// to the repository, when the file's content is now at version current. The
// file exists and is archived; it is clean only if nothing changed since the
// snapshot was taken (exported == current), otherwise it is dirty, so the
// newer content is exported in turn. Exporting a released file (nothing
// local to export) leaves it as it is.
func Exported(path string, f Flags, exported, current Version) (Flags, error) {
	if err := CheckArchive(path, f); err != nil {
		return f, err
	}
	if f.Has(Released) {
		return f, nil
	}
	f |= Exists | Archived
	if exported == current {
		f &^= Dirty
	} else {
		f |= Dirty
	}
	return f, nil
}

// Release is the state after dropping a file's local data (hsm_release,
// RELEASE_DATA_FROM_FILESYSTEM, AUTO_RELEASE_DATA). Only an archived, clean
// file that is not marked never_release and is not open can be released.
// Releasing a released file is a no-op.
func Release(path string, f Flags, open bool) (Flags, error) {
	const op = "release"
	switch {
	case f.Has(Released):
		return f, nil
	case !f.Has(Exists | Archived):
		return refuse(op, path, f, ErrNotArchived)
	case f.Has(Dirty):
		return refuse(op, path, f, ErrDirty)
	case f.Has(NoRelease):
		return refuse(op, path, f, ErrNoRelease)
	case open:
		return refuse(op, path, f, ErrBusy)
	}
	return f | Released, nil
}

// Releasable reports whether Release would release the file.
func Releasable(f Flags, open bool) bool {
	g, err := Release("", f, open)
	return err == nil && g != f
}

// Reimport is the state of an existing file after its object CHANGED in the
// repository: a stub of the new version, keeping the user flags
// (never_release, never_archive). It is refused when the file holds
// unexported content (dirty, or never exported): the caller keeps that
// content and handles the conflict. A never_release file comes back
// released; the caller should fetch it at once.
func Reimport(path string, f Flags) (Flags, error) {
	switch {
	case f.Has(Dirty):
		return refuse("import", path, f, ErrDirty)
	case !f.Has(Exists):
		return refuse("import", path, f, ErrLocalOnly)
	}
	return f&(NoRelease|NoArchive) | Imported(), nil
}

// Vanished is the state of a file whose object was DELETED from the
// repository while the file is kept (the import policy lacks DELETED, or the
// file holds unexported content). A released file has lost its data:
// lost_from_hsm. A file with local data is simply no longer in the
// repository, so it is no longer exists/archived (nor dirty, which is
// relative to an archived copy) and Unexported becomes true.
func Vanished(f Flags) Flags {
	if f.Has(Released) {
		return f | Lost
	}
	return f &^ (Exists | Archived | Dirty | Lost)
}
