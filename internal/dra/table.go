package dra

import (
	"slices"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Assoc is one association as the daemon's parts use it: its record, where
// its two sides are, and what its lifecycle and policies let each part do
// with it now. It is never changed after NewTable made it.
type Assoc struct {
	API api.DataRepositoryAssociation
	Location
}

// ID is the association's id.
func (a *Assoc) ID() string { return a.API.AssociationId }

// Access is how requests to the association's repository are made (its
// FerryRepositoryAccess); every part picks its S3 client by it
// (s3x.Client.For).
func (a *Assoc) Access() s3x.Access { return AccessOf(a.API) }

// AccessOf is the s3x.Access of association a.
func AccessOf(a api.DataRepositoryAssociation) s3x.Access {
	if a.FerryRepositoryAccess == nil {
		return s3x.Access{}
	}
	return s3x.Access{Unsigned: a.FerryRepositoryAccess.Unsigned, RequestPayer: a.FerryRepositoryAccess.RequestPayer}
}

// Inside returns rel's path inside the association ("." for its
// directory), or false when rel is not at or below its directory.
func (a *Assoc) Inside(rel string) (string, bool) { return keypath.Within(a.Dir, rel) }

// StorePath is the store path of in, a path inside the association.
func (a *Assoc) StorePath(in string) string { return keypath.Join(a.Dir, in) }

// Key is the object key of in, a path inside the association, as a file
// or (kind keypath.Dir) a directory object; "" for the association's own
// directory when its prefix is the bucket root.
func (a *Assoc) Key(in string, kind keypath.Kind) (string, error) {
	return keypath.ToKey(a.Prefix, in, kind)
}

// Serves says whether the association serves its repository now: AVAILABLE
// or UPDATING. Only then are its directories listed lazily and its journal
// entries exported.
func (a *Assoc) Serves() bool {
	return a.API.Lifecycle == api.LifecycleAvailable || a.API.Lifecycle == api.LifecycleUpdating
}

// Reads says whether released files of the association may be fetched:
// while it serves, and while it is MISCONFIGURED (reads of data already
// imported keep working; a failing fetch says why).
func (a *Assoc) Reads() bool {
	return a.Serves() || a.API.Lifecycle == api.LifecycleMisconfigured
}

// Gone says whether the association is being deleted or failed: nothing
// is imported or exported for it any more, and its pending exports are
// dropped.
func (a *Assoc) Gone() bool {
	return a.API.Lifecycle == api.LifecycleDeleting || a.API.Lifecycle == api.LifecycleFailed
}

// Exports says whether the association's AutoExportPolicy has any of evs.
func (a *Assoc) Exports(evs ...api.EventType) bool {
	if a.API.S3 == nil || a.API.S3.AutoExportPolicy == nil {
		return false
	}
	for _, ev := range a.API.S3.AutoExportPolicy.Events {
		if slices.Contains(evs, ev) {
			return true
		}
	}
	return false
}

// Imports says whether the association's AutoImportPolicy has any of evs.
func (a *Assoc) Imports(evs ...api.EventType) bool {
	if a.API.S3 == nil || a.API.S3.AutoImportPolicy == nil {
		return false
	}
	for _, ev := range a.API.S3.AutoImportPolicy.Events {
		if slices.Contains(evs, ev) {
			return true
		}
	}
	return false
}

// Journals says whether changes below the association are journaled for
// export: it has an AutoExportPolicy with events and is not gone. Entries
// of one still CREATING or MISCONFIGURED wait in the journal until it
// serves.
func (a *Assoc) Journals() bool {
	return !a.Gone() && a.API.S3 != nil && a.API.S3.AutoExportPolicy != nil && len(a.API.S3.AutoExportPolicy.Events) > 0
}

// Table is every association of a file system at one moment: an immutable
// snapshot, made again and given to every part on each change, so a
// reader never sees half an update and never locks. It answers the one
// question all parts ask — which association holds a path — the same way
// for all of them.
type Table struct {
	all []*Assoc
}

// NewTable makes the table of as. An association whose paths do not parse
// (a record written by hand, or by a version with other rules) is left out
// and given to bad, which logs it; nil ignores them.
func NewTable(as []api.DataRepositoryAssociation, bad func(api.DataRepositoryAssociation, error)) *Table {
	t := &Table{all: make([]*Assoc, 0, len(as))}
	for _, a := range as {
		loc, err := Locate(a)
		if err != nil {
			if bad != nil {
				bad(a, err)
			}
			continue
		}
		t.all = append(t.all, &Assoc{API: a, Location: loc})
	}
	return t
}

// Holder returns the association whose directory holds rel (a store path)
// and rel's path inside it. Associations never nest (the create rules
// refuse overlaps), so at most one holds a path.
func (t *Table) Holder(rel string) (*Assoc, string, bool) {
	if t == nil {
		return nil, "", false
	}
	for _, a := range t.all {
		if in, ok := a.Inside(rel); ok {
			return a, in, true
		}
	}
	return nil, "", false
}

// ByID returns the association with id.
func (t *Table) ByID(id string) (*Assoc, bool) {
	if t == nil {
		return nil, false
	}
	for _, a := range t.all {
		if a.ID() == id {
			return a, true
		}
	}
	return nil, false
}

// All returns every association of the table, in creation order. The
// slice is the table's own: do not change it.
func (t *Table) All() []*Assoc {
	if t == nil {
		return nil
	}
	return t.all
}
