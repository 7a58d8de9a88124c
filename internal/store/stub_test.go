package store

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stubWays are the ways CreateStub can make a stub; each sets up a fresh
// Store to use it and reports whether the Store still uses it afterwards.
var stubWays = []struct {
	name  string
	setup func(s *Store)
	kept  func(s *Store) bool
}{
	{"tmpfile", func(s *Store) {}, func(s *Store) bool { return !s.noTmpfile.Load() }},
	{"tmpfile-proc", func(s *Store) { s.linkByProc.Store(true) }, func(s *Store) bool { return !s.noTmpfile.Load() && s.linkByProc.Load() }},
	{"fallback", func(s *Store) { s.noTmpfile.Store(true) }, func(s *Store) bool { return s.noTmpfile.Load() }},
}

// rawNames lists directory dir of the store's file system, reserved names
// included, sorted and space-separated.
func rawNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, e := range ents {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Name())
	}
	return b.String()
}

// Every way makes the same stub: size without data, owner, mode (set-ID
// bits kept across the chown), times, state; an existing name is never
// replaced (EEXIST) and no temporary file is left.
func TestCreateStubWays(t *testing.T) {
	for _, way := range stubWays {
		t.Run(way.name, func(t *testing.T) {
			s, root := newStore(t)
			way.setup(s)
			if err := s.MkdirAll("d", 0o755); err != nil {
				t.Fatal(err)
			}
			stub := testStub(gib, mib)
			stub.Mode = 0o6750
			if os.Geteuid() != 0 {
				stub.UID, stub.GID = -1, -1
			}
			if err := s.CreateStub("d/f", stub); err != nil {
				t.Fatal(err)
			}
			if !way.kept(s) {
				t.Fatalf("the store left the %s way", way.name)
			}
			st, err := s.Lstat("d/f")
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != gib || st.Blocks != 0 || st.Nlink != 1 {
				t.Errorf("size %d blocks %d links %d; want %d, 0, 1", st.Size, st.Blocks, st.Nlink, gib)
			}
			if st.Mode != unix.S_IFREG|0o6750 {
				t.Errorf("mode %o; want %o", st.Mode, unix.S_IFREG|0o6750)
			}
			if stub.UID >= 0 && (st.Uid != 1001 || st.Gid != 1002) {
				t.Errorf("owner %d:%d; want 1001:1002", st.Uid, st.Gid)
			}
			if st.Mtim.Nano() != stub.Mtime.UnixNano() || st.Atim.Nano() != stub.Atime.UnixNano() {
				t.Errorf("mtime %d atime %d", st.Mtim.Nano(), st.Atim.Nano())
			}
			state, err := s.GetState("d/f")
			if err != nil || state.Flags != importedFlags || state.Size != gib || state.ETag != stub.ETag || state.Chunks == nil || state.Chunks.Len() != 1024 {
				t.Fatalf("state %+v, %v", state, err)
			}
			// Zero times are "now" for mtime and mtime for atime.
			before := time.Now()
			now := testStub(1, 1)
			now.Mtime, now.Atime = time.Time{}, time.Time{}
			if err := s.CreateStub("d/now", now); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.Lstat("d/now"); st.Mtim.Nano() < before.UnixNano() || st.Atim != st.Mtim {
				t.Errorf("zero times: mtime %d (before %d) atime %d", st.Mtim.Nano(), before.UnixNano(), st.Atim.Nano())
			}
			// An existing name, stub or local file, stays as it is.
			if err := s.CreateStub("d/f", testStub(1, 1)); !errors.Is(err, unix.EEXIST) {
				t.Errorf("CreateStub over a stub = %v; want EEXIST", err)
			}
			mustWrite(t, root+"/d/local", "local data")
			if err := s.CreateStub("d/local", stub); !errors.Is(err, unix.EEXIST) {
				t.Errorf("CreateStub over a local file = %v; want EEXIST", err)
			}
			if b, _ := os.ReadFile(root + "/d/local"); string(b) != "local data" {
				t.Errorf("local file now holds %q", b)
			}
			if _, err := s.GetState("d/local"); !errors.Is(err, ErrNoState) {
				t.Errorf("local file got a state: %v", err)
			}
			if st, _ := s.Lstat("d/f"); st.Size != gib {
				t.Errorf("stub replaced: size %d", st.Size)
			}
			if got := rawNames(t, root+"/d"); got != "f local now" {
				t.Errorf("directory holds %q; want f local now", got)
			}
			if !way.kept(s) {
				t.Fatalf("EEXIST made the store leave the %s way", way.name)
			}
		})
	}
}

// A failure at any step of stub creation (a fault injected through the
// Store's stubStep hook) is answered and leaves no file, visible or
// temporary; the next attempt succeeds.
func TestCreateStubFailureLeavesNothing(t *testing.T) {
	for _, way := range stubWays {
		for _, step := range []string{"created", "truncated", "xattr", "attrs"} {
			t.Run(way.name+"/"+step, func(t *testing.T) {
				s, root := newStore(t)
				way.setup(s)
				fault := fmt.Errorf("injected at %s: %w", step, unix.ENOSPC)
				s.hooks.stubStep = func(at string) error {
					if at == step {
						return fault
					}
					return nil
				}
				err := s.CreateStub("f", testStub(mib, kib))
				s.hooks.stubStep = nil
				if !errors.Is(err, fault) || Errno(err) != unix.ENOSPC {
					t.Fatalf("CreateStub = %v; want the injected fault", err)
				}
				if names := rawNames(t, root); names != MetaDir {
					t.Fatalf("left behind: %v", names)
				}
				if !way.kept(s) {
					t.Fatalf("a failure made the store leave the %s way", way.name)
				}
				if err := s.CreateStub("f", testStub(mib, kib)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// linkat AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH unless (Linux 6.10 and
// later) the file was opened with the caller's current credentials; refused,
// it answers ENOENT. The store then links through /proc/self/fd, and
// remembers it. The test makes the kernel refuse: between the open and the
// link it drops CAP_DAC_READ_SEARCH, which also changes the credentials.
func TestCreateStubLinkByProc(t *testing.T) {
	s, root := newStore(t)
	done := make(chan error)
	go func() {
		// Capabilities are per thread: drop the capability on this
		// goroutine's own thread only, and let the thread end with it
		// (no UnlockOSThread).
		runtime.LockOSThread()
		s.hooks.stubStep = func(at string) error {
			if at != "attrs" {
				return nil
			}
			s.hooks.stubStep = nil
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				return err
			}
			data[unix.CAP_DAC_READ_SEARCH/32].Effective &^= 1 << (unix.CAP_DAC_READ_SEARCH % 32)
			return unix.Capset(&hdr, &data[0])
		}
		for i := range 3 {
			if err := s.CreateStub(fmt.Sprintf("f%d", i), testStub(mib, mib)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !s.linkByProc.Load() || s.noTmpfile.Load() {
		t.Fatalf("linkByProc %v noTmpfile %v; want true, false", s.linkByProc.Load(), s.noTmpfile.Load())
	}
	if got := rawNames(t, root); got != MetaDir+" f0 f1 f2" {
		t.Fatalf("store holds %q", got)
	}
	// A real ENOENT (the directory went away between open and link) does
	// not switch ways.
	s2, root2 := newStore(t)
	if err := s2.Mkdir("gone", 0o755); err != nil {
		t.Fatal(err)
	}
	s2.hooks.stubStep = func(at string) error {
		if at == "attrs" {
			return os.Remove(root2 + "/gone")
		}
		return nil
	}
	err := s2.CreateStub("gone/f", testStub(1, 1))
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("stub in a removed directory: %v; want ENOENT", err)
	}
	if s2.linkByProc.Load() || s2.noTmpfile.Load() {
		t.Fatal("a removed directory changed the store's way")
	}
}
