package store

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// noTmpfileNode is go-fuse's loopback file system answering O_TMPFILE as a
// FUSE server without it does (ENOSYS; the kernel then answers EOPNOTSUPP
// and stops asking). calls counts the requests that reached it.
type noTmpfileNode struct {
	fs.LoopbackNode
	calls *atomic.Int32
}

func (n *noTmpfileNode) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n.calls.Add(1)
	return nil, nil, 0, syscall.ENOSYS
}

// A store on a FUSE file system that cannot make stubs the O_TMPFILE way
// (real mounts, real kernel answers) makes them the fallback way, pays the
// refusal once and leaves no temporary file. Two such file systems:
// go-fuse's loopback, which creates O_TMPFILE files but sets their xattrs
// and links them by path, which they lack (ENOENT), and a server without
// O_TMPFILE at all (ENOSYS, which the kernel answers as EOPNOTSUPP).
func TestCreateStubOnFUSE(t *testing.T) {
	testutil.NeedFUSE(t)
	t.Run("loopback", func(t *testing.T) { stubsOnFUSE(t, false) })
	t.Run("no-tmpfile", func(t *testing.T) { stubsOnFUSE(t, true) })
}

func stubsOnFUSE(t *testing.T, refuse bool) {
	back, mnt := t.TempDir(), t.TempDir()
	var calls atomic.Int32
	var st syscall.Stat_t
	if err := syscall.Stat(back, &st); err != nil {
		t.Fatal(err)
	}
	lr := &fs.LoopbackRoot{Path: back, Dev: uint64(st.Dev)}
	if refuse {
		lr.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
			return &noTmpfileNode{LoopbackNode: fs.LoopbackNode{RootData: r}, calls: &calls}
		}
	}
	root, err := fs.NewLoopbackRoot(back)
	if err != nil {
		t.Fatal(err)
	}
	if refuse {
		root = lr.NewNode(lr, nil, "", &st)
		lr.RootNode = root
	}
	server, err := fs.Mount(mnt, root, &fs.Options{MountOptions: fuse.MountOptions{FsName: "ferry-store-test", DirectMount: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Unmount() })

	s, err := Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, rel := range []string{"f0", "f1", "f2"} {
		stub := testStub(mib, kib)
		stub.UID, stub.GID = -1, -1
		if err := s.CreateStub(rel, stub); err != nil {
			t.Fatal(err)
		}
		state, err := s.GetState(rel)
		if err != nil || state.Size != mib || state.Flags != importedFlags {
			t.Fatalf("%s: state %+v, %v", rel, state, err)
		}
	}
	if !s.noTmpfile.Load() {
		t.Fatal("the store did not switch to the fallback")
	}
	if n := calls.Load(); refuse && n != 1 {
		t.Fatalf("O_TMPFILE reached the file system %d times; want 1", n)
	}
	if got := rawNames(t, back); got != MetaDir+" f0 f1 f2" {
		t.Fatalf("store holds %q", got)
	}
}
