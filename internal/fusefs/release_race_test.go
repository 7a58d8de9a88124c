package fusefs

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestOpenDuringRelease: the kernel sends RELEASE after close(2) returned
// and keeps the inode in the released handle's io mode until the reply; an
// open in the other mode meanwhile would fail with EIO. Opens that follow
// a close at once, alternating readers (passthrough) and writers (served
// by the daemon when first), must all succeed. Without Release's
// Node.releasing this failed within a few dozen rounds, and after its
// Release returned (before go-fuse's reply) about once in 500 rounds under load:
// hence releaseGrace.
func TestOpenDuringRelease(t *testing.T) {
	e := mount(t, Options{})
	write(t, e.m("f"), "x")
	testutil.Eventually(t, 5*time.Second, "f free to take passthrough", func() bool { return e.fsys.modeFree("f") })
	pt := e.fsys.Stats.PassthroughOpens.Load()
	read(t, e.m("f"))
	if e.fsys.Stats.PassthroughOpens.Load() == pt {
		testutil.Need(t, errors.New("the kernel offers no passthrough here (Linux ≥ 6.9 and CAP_SYS_ADMIN)"))
	}
	for i := range 500 {
		if err := os.WriteFile(e.m("f"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatalf("round %d: write after a read: %v", i, err)
		}
		if _, err := os.ReadFile(e.m("f")); err != nil {
			t.Fatalf("round %d: read after a write: %v", i, err)
		}
	}
}
