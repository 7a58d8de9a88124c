package importer

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestListAhead: a first listing queues the directories it made, which
// are listed in the background one level down (not further); a queued
// directory already listed — after a restart, from the catalog — is not
// listed again, so a file deleted there does not come back.
func TestListAhead(t *testing.T) {
	e := newEnv(t, Config{ListAhead: 2})
	for _, k := range []string{"data/top/a/f", "data/top/b/g", "data/top/b/deep/h", "data/top/x"} {
		e.put(k, []byte(k), nil)
	}
	e.listed("ExtData")
	testutil.Eventually(t, 10*time.Second, "ExtData/top listed ahead", func() bool {
		_, ok, err := e.cat.Listed(context.Background(), "ExtData/top")
		return ok && err == nil
	})
	for _, rel := range []string{"ExtData/top/x", "ExtData/top/a", "ExtData/top/b"} {
		e.lstat(rel)
	}
	time.Sleep(200 * time.Millisecond) // a second level, if it were listed, has had time
	for _, d := range []string{"ExtData/top/a", "ExtData/top/b"} {
		if _, ok, _ := e.cat.Listed(context.Background(), d); ok {
			t.Errorf("%s listed ahead: list-ahead goes one level down only", d)
		}
	}
	if s := e.im.Stats(); s.ListedAhead != 1 {
		t.Errorf("%d directories listed ahead, want 1", s.ListedAhead)
	}

	// A deleted file stays deleted when its directory is queued again
	// after a restart (the in-memory record of listed directories is gone).
	if err := e.st.Unlink("ExtData/top/x"); err != nil {
		t.Fatal(err)
	}
	e.im = e.start()
	e.im.queueAhead("ExtData/top")
	time.Sleep(300 * time.Millisecond)
	if _, err := e.st.Lstat("ExtData/top/x"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("ExtData/top/x came back after a list-ahead of its listed directory: %v", err)
	}
	if s := e.im.Stats(); s.ListRequests != 0 {
		t.Errorf("%d list requests for a directory listed before the restart", s.ListRequests)
	}
}
