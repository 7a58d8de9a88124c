package daemon

import (
	"os"
	"strings"
	"testing"
)

func TestResolveOwners(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	self, group := uint32(os.Geteuid()), uint32(os.Getegid())

	o, err := resolveOwners(nil, nil, true)
	if err != nil || o.Restricted || o.UID != 0 || o.GID != 0 {
		t.Fatalf("may chown, no flags: %+v %v (want root:root, the FSx rule)", o, err)
	}
	o, err = resolveOwners(u(1000), u(100), true)
	if err != nil || o.Restricted || o.UID != 1000 || o.GID != 100 {
		t.Fatalf("may chown, --uid 1000 --gid 100: %+v %v", o, err)
	}
	o, err = resolveOwners(nil, nil, false)
	if err != nil || !o.Restricted || o.UID != self || o.GID != group {
		t.Fatalf("no CAP_CHOWN: %+v %v (want %d:%d, restricted)", o, err, self, group)
	}
	if _, err := resolveOwners(u(self+1), nil, false); err == nil || !strings.Contains(err.Error(), "CAP_CHOWN") {
		t.Fatalf("no CAP_CHOWN, another uid: %v", err)
	}
	if _, err := resolveOwners(nil, u(group+12345), false); err == nil || !strings.Contains(err.Error(), "--gid") {
		t.Fatalf("no CAP_CHOWN, a group not ours: %v", err)
	}
}
