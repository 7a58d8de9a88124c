package posixmeta

import (
	"strings"
	"testing"
	"time"
)

func TestOwnersApply(t *testing.T) {
	lm := time.Unix(1700000000, 0)
	fsx := Owners{}
	user := Owners{UID: 1000, GID: 1000, Restricted: true, Groups: []uint32{1000, 27}}
	root := Owners{UID: 1000, GID: 100} // root with --uid 1000 --gid 100
	for _, c := range []struct {
		name     string
		o        Owners
		meta     map[string]string
		uid, gid uint32
		replaced bool
	}{
		{"fsx no headers", fsx, nil, 0, 0, false},
		{"fsx headers", fsx, map[string]string{KeyOwner: "1234", KeyGroup: "5678"}, 1234, 5678, false},
		{"root --uid no headers", root, nil, 1000, 100, false},
		{"root --uid headers win", root, map[string]string{KeyOwner: "0", KeyGroup: "0"}, 0, 0, false},
		{"root --uid invalid header", root, map[string]string{KeyOwner: "x"}, 1000, 100, false},
		{"user no headers", user, nil, 1000, 1000, false},
		{"user own headers", user, map[string]string{KeyOwner: "1000", KeyGroup: "27"}, 1000, 27, false},
		{"user other owner", user, map[string]string{KeyOwner: "0", KeyGroup: "27"}, 1000, 27, true},
		{"user other group", user, map[string]string{KeyOwner: "1000", KeyGroup: "0"}, 1000, 1000, true},
		{"user group only", user, map[string]string{KeyGroup: "5"}, 1000, 1000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decode(c.meta, false, lm)
			got := c.o.Apply(&d)
			if d.Attrs.UID != c.uid || d.Attrs.GID != c.gid || got != c.replaced {
				t.Fatalf("Apply: %d:%d replaced=%v, want %d:%d replaced=%v", d.Attrs.UID, d.Attrs.GID, got, c.uid, c.gid, c.replaced)
			}
		})
	}
}

// A changed object without owner headers keeps the file's owner; a header
// the daemon may not give becomes its own, and wins over the current owner.
func TestOwnersApplyThenMerge(t *testing.T) {
	user := Owners{UID: 1000, GID: 1000, Restricted: true}
	cur := Attrs{Mode: TypeRegular | 0o600, UID: 1000, GID: 1000, Mtime: time.Unix(1, 0), Atime: time.Unix(1, 0)}
	d := Decode(map[string]string{}, false, time.Unix(2, 0))
	user.Apply(&d)
	if a := d.Merge(cur); a.UID != 1000 || a.GID != 1000 {
		t.Fatalf("no headers: %d:%d", a.UID, a.GID)
	}
	root := Owners{}
	cur.UID, cur.GID = 42, 43
	d = Decode(map[string]string{}, false, time.Unix(2, 0))
	root.Apply(&d)
	if a := d.Merge(cur); a.UID != 42 || a.GID != 43 {
		t.Fatalf("no headers, FSx rule: %d:%d, want the current 42:43", a.UID, a.GID)
	}
}

func TestOwnersCheck(t *testing.T) {
	if err := (Owners{UID: 5}).Check(1000); err != nil {
		t.Fatalf("unrestricted: %v", err)
	}
	o := Owners{UID: 1000, GID: 1000, Restricted: true, Groups: []uint32{1000, 27}}
	if err := o.Check(1000); err != nil {
		t.Fatal(err)
	}
	o.GID = 27
	if err := o.Check(1000); err != nil {
		t.Fatal(err)
	}
	o.UID = 0
	if err := o.Check(1000); err == nil || !strings.Contains(err.Error(), "--uid 1000") {
		t.Fatalf("another uid: %v", err)
	}
	o.UID, o.GID = 1000, 0
	if err := o.Check(1000); err == nil || !strings.Contains(err.Error(), "--gid") {
		t.Fatalf("another group: %v", err)
	}
}

func TestOwnersDefaults(t *testing.T) {
	a := Owners{UID: 7, GID: 8}.Defaults(true, time.Unix(3, 0))
	if a.UID != 7 || a.GID != 8 || a.Mode != DefaultDirMode {
		t.Fatalf("%+v", a)
	}
}
