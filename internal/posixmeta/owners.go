package posixmeta

import (
	"fmt"
	"slices"
	"time"
)

// Owners is the rule that gives imported files and directories their owner
// and group. Its zero value is FSx's: the owner headers are obeyed, and an
// object without them belongs to root (DefaultUID:DefaultGID).
//
// A daemon that may not give files to others (an ordinary user, or root
// without CAP_CHOWN) is Restricted: it can only make files its own, in one
// of its own groups. Then an owner header naming anyone else is replaced by
// UID, a group header naming a group the daemon is not in by GID, so that
// every object still imports (docs/semantics.md §3, "Ownership").
type Owners struct {
	// UID and GID own objects without owner (group) headers; without
	// Restricted they are usually 0 (FSx), ferry mount --uid/--gid
	// change them.
	UID, GID uint32
	// Restricted: only UID and the groups in Groups (and GID) can be
	// given. Headers naming others are replaced by UID and GID.
	Restricted bool
	// Groups are the groups a Restricted daemon may give besides GID: its
	// effective and supplementary groups.
	Groups []uint32
}

// Check reports why o cannot work, or nil: a Restricted daemon must own
// files itself (UID is its own uid, given as self) and GID must be one of
// its groups.
func (o Owners) Check(self uint32) error {
	if !o.Restricted {
		return nil
	}
	if o.UID != self {
		return fmt.Errorf("owner uid %d: this daemon runs as uid %d without the right to give files to others (CAP_CHOWN); give --uid %d, or run ferry mount as root", o.UID, self, self)
	}
	if !slices.Contains(o.Groups, o.GID) {
		return fmt.Errorf("owner gid %d: uid %d is not in that group and has no CAP_CHOWN; give --gid with one of its groups %v, or run ferry mount as root", o.GID, self, o.Groups)
	}
	return nil
}

func (o Owners) mayGroup(gid uint32) bool {
	return gid == o.GID || slices.Contains(o.Groups, gid)
}

// Apply gives d's attributes their owner under o: a missing or invalid
// owner or group header becomes UID or GID; a valid one is kept unless o is
// Restricted and may not give it, when it becomes UID or GID as well (its
// status stays Valid: the header was read, and a Merge lets it win over a
// file's current owner as the header would have). Apply reports whether a
// valid header was replaced.
func (o Owners) Apply(d *Decoded) (replaced bool) {
	if d.UID != Valid {
		d.Attrs.UID = o.UID
	} else if o.Restricted && d.Attrs.UID != o.UID {
		d.Attrs.UID, replaced = o.UID, true
	}
	if d.GID != Valid {
		d.Attrs.GID = o.GID
	} else if o.Restricted && !o.mayGroup(d.Attrs.GID) {
		d.Attrs.GID, replaced = o.GID, true
	}
	return replaced
}

// Defaults is posixmeta.Defaults with o's owner.
func (o Owners) Defaults(dir bool, lastModified time.Time) Attrs {
	a := Defaults(dir, lastModified)
	a.UID, a.GID = o.UID, o.GID
	return a
}
