package importer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// policy gives the env's association an AutoImportPolicy of evs (and the
// importer the new table).
func (e *env) policy(im *Importer, evs ...api.EventType) {
	e.a.S3 = &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: evs}}
	im.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{e.a}, nil))
}

var allEvents = []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}

func (e *env) hint(key string, kind catalog.HintKind) catalog.ImportHint {
	return catalog.ImportHint{Source: "test", Bucket: e.bucket, Key: key, Kind: kind, Size: -1}
}

// apply applies one hint and checks its outcome.
func (e *env) apply(ap *Applier, key string, kind catalog.HintKind, want HintOutcome) {
	e.t.Helper()
	got, err := ap.Apply(context.Background(), e.hint(key, kind))
	if err != nil {
		e.t.Fatalf("Apply(%s %s): %v", kind, key, err)
	}
	if got != want {
		e.t.Fatalf("Apply(%s %s) = %v, want %v", kind, key, got, want)
	}
}

func (e *env) del(key string) {
	e.t.Helper()
	if _, err := e.cfg.S3.S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) absent(rel string) {
	e.t.Helper()
	if _, err := e.st.Lstat(rel); !errors.Is(err, unix.ENOENT) {
		e.t.Fatalf("%s: want absent, got %v", rel, err)
	}
}

func (e *env) state(rel string) store.State {
	e.t.Helper()
	st, err := e.st.GetState(rel)
	if err != nil {
		e.t.Fatalf("state of %s: %v", rel, err)
	}
	return st
}

// content reads all of rel through the importer, as the mount does.
func (e *env) content(im *Importer, rel string) []byte {
	e.t.Helper()
	f := e.open(rel)
	var st unix.Stat_t
	if err := fstat(f, &st); err != nil {
		e.t.Fatal(err)
	}
	b, err := e.read(im, rel, f, 0, st.Size)
	if err != nil {
		e.t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// dirty writes body into rel as the write path does: the file is restored,
// written, and marked dirty with a new content version.
func (e *env) dirty(im *Importer, rel string, body []byte) {
	e.t.Helper()
	if err := im.Restore(context.Background(), rel, nil); err != nil {
		e.t.Fatal(err)
	}
	f, err := e.st.OpenFile(rel, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := f.Write(body); err != nil {
		e.t.Fatal(err)
	}
	f.Close()
	if _, err := e.st.UpdateState(rel, func(s *store.State) error {
		var err error
		s.Flags, err = hsm.LocalWrite(rel, s.Flags)
		s.Version++
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

// conflictCopies returns the conflict copies of name in store directory dir.
func (e *env) conflictCopies(dir, name string) []string {
	e.t.Helper()
	d, err := e.st.Readdir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	defer d.Close()
	var out []string
	for {
		es, err := d.Next(0)
		for _, de := range es {
			if strings.HasPrefix(de.Name, name+conflictInfix) {
				out = append(out, keypath.Join(dir, de.Name))
			}
		}
		if err != nil {
			return out
		}
	}
}

// journal records the paths Made was called with.
type journal struct {
	mu   sync.Mutex
	made []string
}

func (j *journal) Made(_ context.Context, rel string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.made = append(j.made, rel)
	return nil
}

func TestApplyNew(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{})
	e.put("data/d/old", []byte("old"), nil)
	e.put("data/u/x", []byte("x"), nil)
	e.put("data/u/y", []byte("y"), nil)
	e.listed("ExtData") // u appears as a directory, not listed
	e.listed("ExtData/d")

	// In a listed directory: the stub appears, no data is fetched.
	etag := e.put("data/d/new.txt", []byte("new"), map[string]string{"file-permissions": "0100600", "file-owner": "7"})
	gets := e.im.Stats().GetRequests
	e.apply(ap, "data/d/new.txt", catalog.HintCreated, HintNew)
	if st := e.state("ExtData/d/new.txt"); st.ETag != etag || st.Flags != hsm.Imported() || st.Size != 3 {
		t.Errorf("new stub: %+v", st)
	}
	if st := e.lstat("ExtData/d/new.txt"); st.Mode&0o7777 != 0o600 || st.Uid != 7 {
		t.Errorf("new stub attributes: mode %o uid %d", st.Mode, st.Uid)
	}
	if g := e.im.Stats().GetRequests; g != gets {
		t.Errorf("NEW fetched data: %d GETs", g-gets)
	}
	// The same hint again, and a hint of what is there already: nothing.
	e.apply(ap, "data/d/new.txt", catalog.HintCreated, HintNoop)
	e.apply(ap, "data/d/old", catalog.HintCreated, HintNoop)

	// In a directory never listed: nothing (its listing will see it).
	e.apply(ap, "data/u/x", catalog.HintCreated, HintIgnoredUnlisted)
	e.absent("ExtData/u/x")
	e.listed("ExtData/u")
	e.state("ExtData/u/x")

	// Missing parents: made with their directory objects' attributes; the
	// file appears; the new directories are listed at their first lookup.
	e.put("data/p/", nil, map[string]string{"file-permissions": "0040700", "file-owner": "5"})
	e.put("data/p/q/r.txt", []byte("r"), nil)
	e.put("data/p/q/s.txt", []byte("s"), nil)
	e.apply(ap, "data/p/q/r.txt", catalog.HintCreated, HintNew)
	if st := e.lstat("ExtData/p"); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o700 || st.Uid != 5 {
		t.Errorf("parent p: mode %o uid %d", st.Mode, st.Uid)
	}
	e.state("ExtData/p/q/r.txt")
	conflicts := e.im.Stats().LocalConflicts
	e.listed("ExtData/p/q")
	e.state("ExtData/p/q/s.txt")
	if c := e.im.Stats().LocalConflicts; c != conflicts {
		t.Errorf("the listing after a NEW counted %d local conflicts", c-conflicts)
	}
	// A directory object created: the directory appears.
	e.put("data/d/sub/", nil, map[string]string{"file-permissions": "0040750"})
	e.apply(ap, "data/d/sub/", catalog.HintCreated, HintNew)
	if st := e.lstat("ExtData/d/sub"); st.Mode&0o7777 != 0o750 {
		t.Errorf("directory object: mode %o", st.Mode)
	}
	// Outside every association, and a refused key: ignored.
	e.apply(ap, "elsewhere/k", catalog.HintCreated, HintIgnoredUncovered)
	e.apply(ap, "data/d/../x", catalog.HintCreated, HintIgnoredUncovered)
	if s := e.im.Stats().Hints; s.New != 3 || s.Noop != 2 || s.IgnoredUnlisted != 1 || s.IgnoredUncovered != 2 {
		t.Errorf("counters: %+v", s)
	}
}

func TestApplyChangedClean(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{})
	e.put("data/a", []byte("version one"), map[string]string{"file-owner": "3"})
	e.put("data/b", []byte("bbbb one"), nil)
	e.listed("ExtData")
	if err := e.im.Restore(context.Background(), "ExtData/b", nil); err != nil {
		t.Fatal(err)
	}
	if e.state("ExtData/b").Flags.Has(hsm.Released) {
		t.Fatal("b not fetched")
	}

	// A released stub and a fetched clean file: both become released
	// stubs of the new version; the next read returns the new bytes.
	for _, name := range []string{"a", "b"} {
		etag := e.put("data/"+name, []byte(name+" version two, longer"), nil)
		e.apply(ap, "data/"+name, catalog.HintCreated, HintChanged)
		st := e.state("ExtData/" + name)
		if st.ETag != etag || !st.Flags.Has(hsm.Released) || st.Size != int64(len(name+" version two, longer")) {
			t.Errorf("%s after CHANGED: %+v", name, st)
		}
		if got := e.content(e.im, "ExtData/"+name); string(got) != name+" version two, longer" {
			t.Errorf("%s reads %q", name, got)
		}
		e.apply(ap, "data/"+name, catalog.HintCreated, HintNoop)
	}
	if st := e.lstat("ExtData/a"); st.Uid != 3 {
		t.Errorf("a's owner without a header in the new version: %d, want the file's (3)", st.Uid)
	}

	// A policy without CHANGED ignores changes.
	e.policy(e.im, api.EventNew, api.EventDeleted)
	old := e.state("ExtData/a").ETag
	e.put("data/a", []byte("version three"), nil)
	e.apply(ap, "data/a", catalog.HintCreated, HintIgnoredPolicy)
	if e.state("ExtData/a").ETag != old {
		t.Error("a policy without CHANGED changed the file")
	}
	if s := e.im.Stats().Hints; s.Changed != 2 || s.IgnoredPolicy != 1 {
		t.Errorf("counters: %+v", s)
	}
}

// A reader with the file open when its object changes keeps the old inode:
// what was local reads as the old version, what was not fails with EIO
// (If-Match on the old ETag); never bytes of two versions.
func TestApplyChangedOpenReader(t *testing.T) {
	e := newEnv(t, Config{ChunkSize: mib, Readahead: -1})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{})
	one := randBytes(3*mib, 1)
	e.put("data/f", one, nil)
	e.listed("ExtData")
	f := e.open("ExtData/f")
	if got, err := e.read(e.im, "ExtData/f", f, 0, mib); err != nil || !bytes.Equal(got, one[:mib]) {
		t.Fatalf("first chunk: %v", err)
	}
	two := randBytes(3*mib, 2)
	e.put("data/f", two, nil)
	e.apply(ap, "data/f", catalog.HintCreated, HintChanged)
	if got, err := e.read(e.im, "ExtData/f", f, 0, mib); err != nil || !bytes.Equal(got, one[:mib]) {
		t.Errorf("the open reader's local chunk: %v, old bytes %v", err, bytes.Equal(got, one[:mib]))
	}
	var re *ReadError
	if _, err := e.read(e.im, "ExtData/f", f, 2*mib, mib); !errors.As(err, &re) || re.Code != CodeChanged {
		t.Errorf("the open reader's missing chunk: %v, want a ReadError %s", err, CodeChanged)
	}
	if got := e.content(e.im, "ExtData/f"); !bytes.Equal(got, two) {
		t.Error("a new open does not read the new version")
	}
}

func TestApplyChangedDirty(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	j := &journal{}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ap := e.im.NewApplier(ApplyConfig{Journal: j, Now: func() time.Time { return now }})
	e.put("data/d/f.txt", []byte("repository one"), nil)
	e.listed("ExtData")
	e.listed("ExtData/d")
	e.dirty(e.im, "ExtData/d/f.txt", []byte("local edit"))
	// Taken: the conflict name's first candidate locally, its second in
	// the repository.
	if err := os.WriteFile(e.dir+"/ExtData/d/"+conflictName("f.txt", now, 1), []byte("taken"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.put("data/d/"+conflictName("f.txt", now, 2), []byte("taken too"), nil)

	etag := e.put("data/d/f.txt", []byte("repository two"), nil)
	e.apply(ap, "data/d/f.txt", catalog.HintCreated, HintConflict)
	cp := "ExtData/d/" + conflictName("f.txt", now, 3)
	if got, err := os.ReadFile(e.dir + "/" + cp); err != nil || string(got) != "local edit" {
		t.Errorf("conflict copy %s: %q, %v", cp, got, err)
	}
	if st, err := e.st.GetState(cp); err == nil && st.Flags != hsm.None {
		t.Errorf("conflict copy flags %v, want none (local-only)", st.Flags)
	}
	if st := e.state("ExtData/d/f.txt"); st.ETag != etag || st.Flags != hsm.Imported() {
		t.Errorf("the name after a conflict: %+v", st)
	}
	if got := e.content(e.im, "ExtData/d/f.txt"); string(got) != "repository two" {
		t.Errorf("the name reads %q", got)
	}
	if len(j.made) != 1 || j.made[0] != cp {
		t.Errorf("journaled %v, want NEW %s", j.made, cp)
	}
	// Applied again (a duplicate, or after a crash before completion):
	// nothing more.
	e.apply(ap, "data/d/f.txt", catalog.HintCreated, HintNoop)
	if n := len(e.conflictCopies("ExtData/d", "f.txt")); n != 2 { // ours and the one made taken
		t.Errorf("%d conflict copies, want 2", n)
	}

	// A file never exported where an object appears: a conflict too.
	if err := os.WriteFile(e.dir+"/ExtData/d/mine", []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.put("data/d/mine", []byte("theirs"), nil)
	e.apply(ap, "data/d/mine", catalog.HintCreated, HintConflict)
	if cs := e.conflictCopies("ExtData/d", "mine"); len(cs) != 1 {
		t.Errorf("mine: copies %v", cs)
	} else if got, _ := os.ReadFile(e.dir + "/" + cs[0]); string(got) != "mine" {
		t.Errorf("mine's copy: %q", got)
	}
	if s := e.im.Stats().Hints; s.ConflictsChanged != 2 || s.Conflicts() != 2 {
		t.Errorf("counters: %+v", s)
	}
}

// An open file with local changes is not moved aside: the hint waits.
func TestApplyConflictDeferredWhileOpen(t *testing.T) {
	open := true
	e := newEnv(t, Config{InUse: func(string) bool { return open }})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{Owner: "test"})
	e.put("data/f", []byte("one"), nil)
	e.listed("ExtData")
	e.dirty(e.im, "ExtData/f", []byte("local"))
	e.put("data/f", []byte("two"), nil)
	ctx := context.Background()
	if _, err := e.cat.EnqueueHints(ctx, e.hint("data/f", catalog.HintCreated)); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.im.Stats().Hints; s.Deferred != 1 || s.Conflicts() != 0 {
		t.Errorf("counters while open: %+v", s)
	}
	if n, _ := e.cat.HintDepth(ctx); n != 1 {
		t.Errorf("hint depth %d, want 1 (deferred)", n)
	}
	open = false
	if _, err := ap.Apply(ctx, e.hint("data/f", catalog.HintCreated)); err != nil {
		t.Fatal(err)
	}
	if cs := e.conflictCopies("ExtData", "f"); len(cs) != 1 {
		t.Errorf("copies after close: %v", cs)
	}
}

// A file whose export runs now (hsm archive, an export task: no journal
// claim shows it) is not moved aside while its upload may be what changed
// the object: the hint waits until the export ended.
func TestApplyDeferredWhileExporting(t *testing.T) {
	exporting := true
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{Owner: "test", Exporting: func(rel string) bool { return exporting && rel == "ExtData/f" }})
	e.put("data/f", []byte("one"), nil)
	e.listed("ExtData")
	e.dirty(e.im, "ExtData/f", []byte("local"))
	e.put("data/f", []byte("local"), nil) // the export's upload
	ctx := context.Background()
	if _, err := ap.Apply(ctx, e.hint("data/f", catalog.HintCreated)); !errors.As(err, new(*deferError)) {
		t.Fatalf("Apply while exporting: %v, want deferred", err)
	}
	if cs := e.conflictCopies("ExtData", "f"); len(cs) != 0 {
		t.Errorf("conflict copies while exporting: %v", cs)
	}
	exporting = false
	if _, err := ap.Apply(ctx, e.hint("data/f", catalog.HintCreated)); err != nil {
		t.Fatal(err)
	}
}

// Run reports each hint applied, with its association and outcome, to
// ApplyConfig.Applied; Covers tells the keys an auto-import association
// serves.
func TestApplyReportsApplied(t *testing.T) {
	e := newEnv(t, Config{})
	got := make(chan AppliedHint, 10)
	ap := e.im.NewApplier(ApplyConfig{Owner: "test", Poll: 50 * time.Millisecond, Applied: func(h AppliedHint) { got <- h }})
	if ap.Covers(e.bucket, "data/new") {
		t.Errorf("covered without an AutoImportPolicy")
	}
	e.policy(e.im, allEvents...)
	if !ap.Covers(e.bucket, "data/new") || ap.Covers(e.bucket, "elsewhere/new") || ap.Covers("other-bucket", "data/new") {
		t.Errorf("Covers: want only keys below the association's prefix in its bucket")
	}
	e.listed("ExtData")
	e.put("data/new", []byte("n"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ap.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := e.hint("data/new", catalog.HintCreated)
	h.EventTime = time.Now().Add(-time.Second)
	if _, err := e.cat.EnqueueHints(context.Background(), h, e.hint("elsewhere/x", catalog.HintCreated)); err != nil {
		t.Fatal(err)
	}
	ap.Notify()
	seen := map[string]AppliedHint{}
	for len(seen) < 2 {
		select {
		case a := <-got:
			seen[a.Hint.Key] = a
		case <-time.After(20 * time.Second):
			t.Fatalf("applied reports: %+v", seen)
		}
	}
	if a := seen["data/new"]; a.Association != e.a.AssociationId || a.Outcome != HintNew || !a.Hint.EventTime.Equal(h.EventTime) || a.At.Sub(a.Hint.EventTime) < time.Second {
		t.Errorf("data/new reported as %+v", a)
	}
	if a := seen["elsewhere/x"]; a.Association != "" || a.Outcome != HintIgnoredUncovered {
		t.Errorf("elsewhere/x reported as %+v", a)
	}
}

func TestApplyDeleted(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{})
	e.put("data/clean", []byte("c"), nil)
	e.put("data/dirty", []byte("d"), nil)
	e.put("data/sub/deep/only", []byte("o"), nil)
	e.put("data/keep/a", []byte("a"), nil)
	e.put("data/keep/b", []byte("b"), nil)
	e.listed("ExtData")
	e.listed("ExtData/sub")
	e.listed("ExtData/sub/deep")
	e.listed("ExtData/keep")
	e.dirty(e.im, "ExtData/dirty", []byte("local"))

	e.del("data/clean")
	e.apply(ap, "data/clean", catalog.HintRemoved, HintDeleted)
	e.absent("ExtData/clean")
	e.apply(ap, "data/clean", catalog.HintRemoved, HintNoop)

	// A dirty file stays, now local-only.
	e.del("data/dirty")
	e.apply(ap, "data/dirty", catalog.HintRemoved, HintConflict)
	if got, _ := os.ReadFile(e.dir + "/ExtData/dirty"); string(got) != "local" {
		t.Errorf("dirty file after its object went: %q", got)
	}
	if st := e.state("ExtData/dirty"); hsm.Unexported(st.Flags) == false || st.Flags.Has(hsm.Exists) {
		t.Errorf("dirty file flags %v, want local-only", st.Flags)
	}

	// The last file of directories: they go once empty, up to the
	// association's directory.
	e.del("data/sub/deep/only")
	e.apply(ap, "data/sub/deep/only", catalog.HintRemoved, HintDeleted)
	e.absent("ExtData/sub")
	if _, ok, _ := e.cat.Listed(context.Background(), "ExtData/sub/deep"); ok {
		t.Error("a removed directory is still recorded listed")
	}
	// A directory with another file stays.
	e.del("data/keep/a")
	e.apply(ap, "data/keep/a", catalog.HintRemoved, HintDeleted)
	e.lstat("ExtData/keep/b")

	// A policy without DELETED ignores deletes.
	e.policy(e.im, api.EventNew, api.EventChanged)
	e.del("data/keep/b")
	e.apply(ap, "data/keep/b", catalog.HintRemoved, HintIgnoredPolicy)
	e.lstat("ExtData/keep/b")
	if s := e.im.Stats().Hints; s.Deleted != 3 || s.ConflictsDeleted != 1 || s.DirsRemoved != 2 {
		t.Errorf("counters: %+v", s)
	}
}

// Reordered and stale hints change nothing the repository does not say.
func TestApplyStaleAndReordered(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	ap := e.im.NewApplier(ApplyConfig{})
	e.listed("ExtData")
	// Created then deleted, the hints arriving after both: nothing appears.
	e.put("data/gone", []byte("g"), nil)
	e.del("data/gone")
	e.apply(ap, "data/gone", catalog.HintCreated, HintNoop)
	e.absent("ExtData/gone")
	// Deleted then created again, the REMOVED hint last: the file stays.
	e.put("data/back", []byte("1"), nil)
	e.apply(ap, "data/back", catalog.HintCreated, HintNew)
	e.del("data/back")
	etag := e.put("data/back", []byte("2"), nil)
	e.apply(ap, "data/back", catalog.HintCreated, HintChanged)
	e.apply(ap, "data/back", catalog.HintRemoved, HintNoop)
	if st := e.state("ExtData/back"); st.ETag != etag {
		t.Errorf("back: ETag %s, want %s", st.ETag, etag)
	}
}

// A crash between applying a hint and completing it: the hint is claimed
// again after its lease and applied again, with the same result.
func TestApplyCrashBeforeComplete(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	ctx := context.Background()
	e.put("data/f", []byte("one"), nil)
	e.put("data/g", []byte("g one"), nil)
	e.listed("ExtData")
	e.dirty(e.im, "ExtData/g", []byte("g local"))
	e.put("data/new", []byte("n"), nil)
	etag := e.put("data/f", []byte("two"), nil)
	e.put("data/g", []byte("g two"), nil)
	hints := []catalog.ImportHint{
		e.hint("data/new", catalog.HintCreated), e.hint("data/f", catalog.HintCreated), e.hint("data/g", catalog.HintCreated),
	}
	if _, err := e.cat.EnqueueHints(ctx, hints...); err != nil {
		t.Fatal(err)
	}
	// The first daemon claims and applies, and dies before completing.
	ap := e.im.NewApplier(ApplyConfig{Owner: "first", Lease: 200 * time.Millisecond})
	hs, err := e.cat.ClaimHints(ctx, "first", 10, 200*time.Millisecond)
	if err != nil || len(hs) != 3 {
		t.Fatalf("claim: %d, %v", len(hs), err)
	}
	for _, h := range hs {
		if _, err := ap.Apply(ctx, h.ImportHint); err != nil {
			t.Fatal(err)
		}
	}
	e.im.Close()
	// The next one, after the lease: applied again, nothing more happens.
	im := e.start()
	e.policy(im, allEvents...)
	ap = im.NewApplier(ApplyConfig{Owner: "second"})
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n == 0; {
		if n, err = ap.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the hints were never claimed again")
		}
		if n == 0 {
			time.Sleep(50 * time.Millisecond) // the lease of the dead claim
		}
	}
	if s := im.Stats().Hints; s.Noop != 3 || s.Applied() != 0 {
		t.Errorf("second application: %+v", s)
	}
	if d, _ := e.cat.HintDepth(ctx); d != 0 {
		t.Errorf("hint depth %d after completion", d)
	}
	if st := e.state("ExtData/f"); st.ETag != etag {
		t.Errorf("f: %+v", st)
	}
	e.state("ExtData/new")
	if cs := e.conflictCopies("ExtData", "g"); len(cs) != 1 {
		t.Errorf("g's copies: %v", cs)
	}
}

func TestConflictName(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if got := conflictName("f.txt", at, 2); got != "f.txt.ferry-conflict-20260102T020405Z-2" {
		t.Errorf("conflictName = %q", got)
	}
	long := strings.Repeat("é", 127) // 254 bytes
	got := conflictName(long, at, 1)
	if len(got) > keypath.MaxNameLen || !strings.HasSuffix(got, "-1") || !strings.HasPrefix(got, "éé") {
		t.Errorf("long name: %d bytes %q", len(got), got)
	}
	if _, _, err := keypath.ToPath("", got); err != nil {
		t.Errorf("a cut name is not a valid key: %v", err)
	}
}
