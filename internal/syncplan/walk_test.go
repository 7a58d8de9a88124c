package syncplan

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// walkAll drains WalkLocal and returns the Rels and the warnings.
func walkAll(t *testing.T, root string, follow bool) ([]string, []Warning) {
	t.Helper()
	var warns []Warning
	it := WalkLocal(context.Background(), root, LocalOptions{FollowSymlinks: follow, Warn: func(w Warning) { warns = append(warns, w) }})
	var rels []string
	for {
		e, ok, err := nextFile(it)
		if err != nil {
			t.Fatalf("walk: %v", err)
		}
		if !ok {
			return rels, warns
		}
		if want := filepath.Join(root, filepath.FromSlash(e.Rel)); e.Path != want {
			t.Errorf("entry %q: Path %q, want %q", e.Rel, e.Path, want)
		}
		st, err := os.Stat(e.Path)
		if err != nil {
			t.Fatalf("entry %q: %v", e.Rel, err)
		}
		if e.Size != st.Size() || !e.ModTime.Equal(st.ModTime()) {
			t.Errorf("entry %q: size %d mtime %v, file has %d %v", e.Rel, e.Size, e.ModTime, st.Size(), st.ModTime())
		}
		rels = append(rels, e.Rel)
	}
}

// mkfiles creates files (a path ending in "/" is a directory) under root.
func mkfiles(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWalkOrder(t *testing.T) {
	root := t.TempDir()
	files := []string{
		"a.txt", "a/b", "a-b", "a0", "a/b.c/d", "a/bb/c", "a/b-c", "a/a", "ab",
		"é", "e", "z", "A", "Z/z", "~", " space", "x/y/z/w/v/u", "x.y", "x-y/z",
	}
	mkfiles(t, root, files...)
	mkfiles(t, root, "emptydir/", "x/emptysub/")
	got, warns := walkAll(t, root, true)
	want := slices.Clone(files)
	sort.Strings(want) // Go compares strings bytewise: S3 key order
	if !reflect.DeepEqual(got, want) {
		t.Errorf("walk order:\n got  %q\n want %q", got, want)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
}

func TestWalkOrderDeep(t *testing.T) {
	root := t.TempDir()
	var want []string
	dir := ""
	for i := 0; i < 40; i++ {
		want = append(want, dir+"d.txt", dir+"d0", dir+"d-")
		dir += "d/"
	}
	want = append(want, dir+"leaf")
	mkfiles(t, root, want...)
	sort.Strings(want)
	got, _ := walkAll(t, root, false)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deep walk order:\n got  %q\n want %q", got, want)
	}
}

// TestWalkOrderRandom builds random trees (seeded) with names chosen to
// collide around "/" in byte order and checks that the walk yields exactly
// the files, in byte order of their relative paths.
func TestWalkOrderRandom(t *testing.T) {
	alphabet := []rune{'a', 'b', '.', '-', '0', '_', '~', ' ', 'A', 'é', '日', '+', '!', '\x01'}
	for seed := int64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			root := t.TempDir()
			var want []string
			var build func(dir, rel string, depth int)
			build = func(dir, rel string, depth int) {
				n := rng.Intn(9)
				for i := 0; i < n; i++ {
					name := make([]rune, 1+rng.Intn(3))
					for j := range name {
						name[j] = alphabet[rng.Intn(len(alphabet))]
					}
					s := string(name)
					p := filepath.Join(dir, s)
					if _, err := os.Lstat(p); err == nil || s == "." || s == ".." {
						continue // taken
					}
					if depth < 4 && rng.Intn(3) == 0 {
						if err := os.Mkdir(p, 0o755); err != nil {
							t.Fatal(err)
						}
						build(p, rel+s+"/", depth+1)
						continue
					}
					if err := os.WriteFile(p, []byte(strings.Repeat("x", rng.Intn(5))), 0o644); err != nil {
						t.Fatal(err)
					}
					want = append(want, rel+s)
				}
			}
			for len(want) < 50 {
				build(root, "", 0)
			}
			sort.Strings(want)
			got, warns := walkAll(t, root, true)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("walk of %d files out of order or incomplete:\n got  %q\n want %q", len(want), got, want)
			}
			if len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
		})
	}
}

func TestWalkSpecialFiles(t *testing.T) {
	root := t.TempDir()
	mkfiles(t, root, "a", "z")
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	special := []string{"fifo", "sock"}
	if err := unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err == nil {
		special = append(special, "null")
	} else {
		t.Logf("no character device in the test (mknod: %v)", err)
	}
	got, warns := walkAll(t, root, true)
	if want := []string{"a", "z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	var wantW []Warning
	for _, s := range special {
		wantW = append(wantW, Warning{Path: filepath.Join(root, s), Message: MsgSpecial})
	}
	sortWarnings(warns)
	sortWarnings(wantW)
	if !reflect.DeepEqual(warns, wantW) {
		t.Errorf("warnings:\n got  %v\n want %v", warns, wantW)
	}
}

func sortWarnings(ws []Warning) {
	sort.Slice(ws, func(i, j int) bool { return ws[i].Path < ws[j].Path })
}

// withoutDACOverride runs fn with the permission bits in force even for
// root: on a thread of its own, locked and dropped when fn returns, it clears
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the effective set. Tests run
// as root in CI, where chmod 000 alone would not make a file unreadable.
func withoutDACOverride(fn func()) error {
	if os.Geteuid() != 0 {
		fn()
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, so the
		// reduced capabilities never leak to other goroutines.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		data[0].Effective &^= 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		if _, err := os.ReadFile("/proc/self/status"); err != nil { // sanity: still works
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

func TestWalkUnreadable(t *testing.T) {
	root := t.TempDir()
	mkfiles(t, root, "a", "locked/inner", "secret", "z")
	for _, p := range []string{"secret", "locked"} {
		if err := os.Chmod(filepath.Join(root, p), 0); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "locked"), 0o755) })
	var got []string
	var warns []Warning
	err := withoutDACOverride(func() {
		it := WalkLocal(context.Background(), root, LocalOptions{FollowSymlinks: true, Warn: func(w Warning) { warns = append(warns, w) }})
		for {
			e, ok, err := nextFile(it)
			if err != nil {
				t.Errorf("walk: %v", err)
				return
			}
			if !ok {
				return
			}
			got = append(got, e.Rel)
		}
	})
	if err != nil {
		t.Skipf("running as root and cannot drop CAP_DAC_OVERRIDE (%v): permission bits do not stop root, so unreadable files cannot be tested", err)
	}
	if want := []string{"a", "z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	wantW := []Warning{
		{Path: filepath.Join(root, "locked"), Message: MsgNotReadable},
		{Path: filepath.Join(root, "secret"), Message: MsgNotReadable},
	}
	if !reflect.DeepEqual(warns, wantW) {
		t.Errorf("warnings:\n got  %v\n want %v", warns, wantW)
	}
}

func TestWalkSymlinks(t *testing.T) {
	root := t.TempDir()
	mkfiles(t, root, "a.txt", "dir/f", "lnk.txt", "lnk0", "loop/x")
	links := map[string]string{
		"linkfile":  "a.txt",
		"lnk":       "dir", // a directory: sorts as "lnk/", between lnk.txt and lnk0
		"broken":    "nowhere",
		"self":      "self", // ELOOP
		"loop/back": "..",   // the root again
		"loop/up":   "../dir",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("follow", func(t *testing.T) {
		got, warns := walkAll(t, root, true)
		want := []string{"a.txt", "dir/f", "linkfile", "lnk.txt", "lnk/f", "lnk0", "loop/up/f", "loop/x"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("files:\n got  %q\n want %q", got, want)
		}
		wantW := []Warning{
			{Path: filepath.Join(root, "broken"), Message: MsgNotExist},
			{Path: filepath.Join(root, "loop/back"), Message: MsgSymlinkLoop},
			{Path: filepath.Join(root, "self"), Message: MsgNotExist},
		}
		sortWarnings(warns)
		if !reflect.DeepEqual(warns, wantW) {
			t.Errorf("warnings:\n got  %v\n want %v", warns, wantW)
		}
	})
	t.Run("no follow", func(t *testing.T) {
		got, warns := walkAll(t, root, false)
		want := []string{"a.txt", "dir/f", "lnk.txt", "lnk0", "loop/x"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("files:\n got  %q\n want %q", got, want)
		}
		if len(warns) != 0 {
			t.Errorf("symlinks are skipped silently, got warnings %v", warns)
		}
	})
	t.Run("root is a symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "rootlink")
		if err := os.Symlink(filepath.Join(root, "dir"), link); err != nil {
			t.Fatal(err)
		}
		got, _ := walkAll(t, link, true)
		if want := []string{"f"}; !reflect.DeepEqual(got, want) {
			t.Errorf("following: files %q, want %q", got, want)
		}
		// aws ignores a root that is a symlink under --no-follow-symlinks,
		// with or without a trailing slash.
		for _, r := range []string{link, link + "/"} {
			var warns []Warning
			it := WalkLocal(context.Background(), r, LocalOptions{Warn: func(w Warning) { warns = append(warns, w) }})
			if e, ok, err := nextFile(it); ok || err != nil || len(warns) != 0 {
				t.Errorf("no follow, root %q: got %v %v %v, warnings %v; want nothing", r, e, ok, err, warns)
			}
		}
	})
}

func TestWalkRootProblems(t *testing.T) {
	dir := t.TempDir()
	mkfiles(t, dir, "file")
	var warns []Warning
	it := WalkLocal(context.Background(), filepath.Join(dir, "missing"), LocalOptions{Warn: func(w Warning) { warns = append(warns, w) }})
	if _, ok, err := nextFile(it); ok || err != nil {
		t.Errorf("missing root: ok %v err %v", ok, err)
	}
	if want := []Warning{{Path: filepath.Join(dir, "missing"), Message: MsgNotExist}}; !reflect.DeepEqual(warns, want) {
		t.Errorf("missing root: warnings %v, want %v", warns, want)
	}
	it = WalkLocal(context.Background(), filepath.Join(dir, "file"), LocalOptions{})
	if _, _, err := nextFile(it); err == nil {
		t.Error("a file as root: no error")
	}
	// A relative root: Entry.Path stays relative, Warning.Path is absolute.
	t.Chdir(dir)
	mkfiles(t, dir, "sub/x")
	if err := unix.Mkfifo(filepath.Join(dir, "sub", "p"), 0o644); err != nil {
		t.Fatal(err)
	}
	warns = nil
	it = WalkLocal(context.Background(), "./sub", LocalOptions{Warn: func(w Warning) { warns = append(warns, w) }})
	e, ok, err := nextFile(it)
	if !ok || err != nil || e.Path != "sub/x" || e.Rel != "x" {
		t.Errorf("relative root: %+v %v %v", e, ok, err)
	}
	if want := []Warning{{Path: filepath.Join(dir, "sub", "p"), Message: MsgSpecial}}; !reflect.DeepEqual(warns, want) {
		t.Errorf("relative root: warnings %v, want %v", warns, want)
	}
}

func TestWalkCanceled(t *testing.T) {
	root := t.TempDir()
	mkfiles(t, root, "a", "b", "c")
	ctx, cancel := context.WithCancel(context.Background())
	it := WalkLocal(ctx, root, LocalOptions{})
	if _, ok, err := nextFile(it); !ok || err != nil {
		t.Fatalf("first: %v %v", ok, err)
	}
	cancel()
	if _, ok, err := nextFile(it); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: ok %v err %v, want Canceled", ok, err)
	}
}

// TestWalkBoundedMemory walks a real tree of FERRY_SYNCPLAN_WALK_FILES files
// (e.g. 1000000; skipped when unset: creating them takes minutes) through
// Plan and checks that the heap does not grow with the tree.
func TestWalkBoundedMemory(t *testing.T) {
	var n int
	if v := os.Getenv("FERRY_SYNCPLAN_WALK_FILES"); v != "" {
		fmt.Sscan(v, &n)
	}
	if n == 0 {
		t.Skip("set FERRY_SYNCPLAN_WALK_FILES=1000000 to walk a large tree")
	}
	root := t.TempDir()
	const perDir = 1000
	for i := 0; i < n; i++ {
		if i%perDir == 0 {
			if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%04d", i/perDir/100), fmt.Sprintf("e%02d", i/perDir%100)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(root, fmt.Sprintf("d%04d", i/perDir/100), fmt.Sprintf("e%02d", i/perDir%100), fmt.Sprintf("f%07d", i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, uint64(0)
	k := 0
	err := Plan(context.Background(), WalkLocal(context.Background(), root, LocalOptions{}), &genIter{}, Options{}, func(a Action) error {
		if k++; k%50_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if k != n {
		t.Errorf("planned %d copies, want %d", k, n)
	}
	growth := int64(peak) - int64(base)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM") {
			t.Logf("peak RSS of the test process (tree creation included): %s", strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
		}
	}
	t.Logf("%d files: heap in use grew by %d KiB", n, growth>>10)
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB walking %d files", growth>>20, n)
	}
}

func sortStrings(s []string) { sort.Strings(s) }

// nextFile is it.Next without the Skipped entries (the walk's warnings are
// checked through the Warn callback).
func nextFile(it Iterator) (Entry, bool, error) {
	for {
		e, ok, err := it.Next()
		if !ok || err != nil || !e.Skipped {
			return e, ok, err
		}
	}
}
