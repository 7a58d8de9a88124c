package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The helper process: with FERRY_STORE_CRASH_AT set it opens the store at
// FERRY_STORE_ROOT, creates stub d/f (with FERRY_STORE_FALLBACK=1 the
// temporary-name way, else O_TMPFILE) and SIGKILLs itself right after the
// named step.
func TestHelperCrashDuringStub(t *testing.T) {
	step := os.Getenv("FERRY_STORE_CRASH_AT")
	if step == "" {
		t.Skip("helper process only")
	}
	s, err := Open(os.Getenv("FERRY_STORE_ROOT"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("FERRY_STORE_FALLBACK") == "1" {
		s.noTmpfile.Store(true)
	}
	s.hooks.stubStep = func(at string) error {
		if at == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}
	if err := s.CreateStub("d/f", testStub(64*mib, mib)); err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}

// Invariant 7: a crash at any step of stub creation leaves, after recovery,
// no temporary file and no stub without its state. The O_TMPFILE way leaves
// no temporary file even before recovery.
func TestCrashDuringStubRecovery(t *testing.T) {
	for _, way := range []string{"tmpfile", "fallback"} {
		for _, step := range []string{"created", "truncated", "xattr", "attrs", "renamed"} {
			t.Run(way+"/"+step, func(t *testing.T) { crashDuringStub(t, way, step) })
		}
	}
}

func crashDuringStub(t *testing.T, way, step string) {
	s, root := newStore(t)
	if err := s.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashDuringStub$", "-test.count=1")
	fallback := "0"
	if way == "fallback" {
		fallback = "1"
	}
	cmd.Env = append(os.Environ(), "FERRY_STORE_CRASH_AT="+step, "FERRY_STORE_ROOT="+root, "FERRY_STORE_FALLBACK="+fallback)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed at %s: %v\n%s", step, err, out)
	}
	// Before recovery: the temporary file is invisible through the
	// store, and whatever is visible is a complete stub.
	raw, _ := os.ReadDir(root + "/d")
	temps := 0
	for _, e := range raw {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			temps++
		}
	}
	wantTemps := 1
	if step == "renamed" || way == "tmpfile" {
		wantTemps = 0
	}
	if temps != wantTemps {
		t.Fatalf("%d temporary files on disk; want %d", temps, wantTemps)
	}
	if step != "renamed" && len(raw) != temps {
		t.Fatalf("after a crash at %s the directory holds %d entries, %d of them temporary", step, len(raw), temps)
	}
	if names := readAll(t, s, "d"); step != "renamed" && len(names) != 0 {
		t.Fatalf("store lists %v", names)
	}
	n, err := s.RemoveAllTempStubs(context.Background(), ".")
	if err != nil || n != wantTemps {
		t.Fatalf("recovery removed %d, %v; want %d", n, err, wantTemps)
	}
	raw, _ = os.ReadDir(root + "/d")
	for _, e := range raw {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Fatalf("temporary file %s survived recovery", e.Name())
		}
	}
	st, err := s.GetState("d/f")
	switch {
	case step == "renamed":
		if err != nil || st.Size != 64*mib || st.Flags != importedFlags {
			t.Fatalf("completed stub: %+v %v", st, err)
		}
		c, err := s.CheckStub("d/f", false)
		if err != nil || len(c.Problems) != 0 {
			t.Fatalf("check: %+v %v", c, err)
		}
	case !errors.Is(err, unix.ENOENT):
		t.Fatalf("d/f after a crash at %s: %v; want no file", step, err)
	}
	// The import can simply run again.
	if step != "renamed" {
		if err := s.CreateStub("d/f", testStub(64*mib, mib)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemoveAllTempStubsWalk(t *testing.T) {
	s, root := newStore(t)
	mustWrite(t, root+"/a/b/c/"+TempPrefix+"1", "")
	mustWrite(t, root+"/a/"+TempPrefix+"2", "")
	mustWrite(t, root+"/"+TempPrefix+"3", "")
	mustWrite(t, root+"/a/b/keep", "")
	mustWrite(t, root+"/"+MetaDir+"/"+TempPrefix+"catalog-owned", "")
	os.MkdirAll(root+"/outside/x", 0o755)
	mustWrite(t, root+"/outside/x/"+TempPrefix+"4", "")
	os.Symlink(root+"/outside", root+"/a/link") // must not be followed
	if err := os.Mkdir(root+"/a/"+TempPrefix+"dir", 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := s.RemoveAllTempStubs(context.Background(), "a")
	if err != nil || n != 3 {
		t.Fatalf("removed %d, %v; want 3 below a", n, err)
	}
	if _, err := os.Stat(root + "/outside/x/" + TempPrefix + "4"); err != nil {
		t.Fatal("followed a symlink")
	}
	n, err = s.RemoveAllTempStubs(context.Background(), ".")
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2", n, err)
	}
	if _, err := os.Stat(root + "/" + MetaDir + "/" + TempPrefix + "catalog-owned"); err != nil {
		t.Fatal("entered the metadata folder")
	}
	if _, err := os.Stat(root + "/a/b/keep"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.RemoveAllTempStubs(ctx, "."); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled walk: %v", err)
	}
}
