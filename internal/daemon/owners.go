package daemon

import (
	"os"

	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/store"
)

// resolveOwners decides who owns imported files (Config.UID, Config.GID;
// docs/semantics.md §3, "Ownership"):
//
//   - A daemon that may give files to others (CAP_CHOWN in its effective
//     set; root normally) obeys the owner headers, as FSx; objects without
//     them belong to UID:GID, root:root unless given.
//   - Any other daemon (an ordinary user, root without CAP_CHOWN) can only
//     make files its own: objects without owner headers, and with headers
//     naming others, belong to UID:GID, the daemon's uid and group unless
//     given; a UID other than its own, or a GID not among its groups, is
//     refused here with the fix.
func resolveOwners(uid, gid *uint32, mayChown bool) (posixmeta.Owners, error) {
	o := posixmeta.Owners{UID: posixmeta.DefaultUID, GID: posixmeta.DefaultGID}
	self := uint32(os.Geteuid())
	if !mayChown {
		o = posixmeta.Owners{UID: self, GID: uint32(os.Getegid()), Restricted: true, Groups: store.Groups()}
	}
	if uid != nil {
		o.UID = *uid
	}
	if gid != nil {
		o.GID = *gid
	}
	if err := o.Check(self); err != nil {
		return o, err
	}
	return o, nil
}
