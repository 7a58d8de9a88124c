package fusefs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUserAllowOther(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		conf string
		want bool
	}{
		{"", false},
		{"# user_allow_other\n", false},
		{"mount_max = 1000\nuser_allow_other\n", true},
		{"  user_allow_other   # shared\n", true},
		{"user_allow_others\n", false},
	} {
		p := filepath.Join(dir, "fuse.conf")
		if err := os.WriteFile(p, []byte(c.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := userAllowOther(p); got != c.want {
			t.Errorf("%q: %v, want %v", c.conf, got, c.want)
		}
	}
	if userAllowOther(filepath.Join(dir, "missing")) {
		t.Error("a missing fuse.conf allows allow_other")
	}
}
