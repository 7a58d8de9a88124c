package exporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// exportedTree writes files f0..f{n-1} below dir and exports them.
func (e *env) exportedTree(dir string, n int) {
	e.t.Helper()
	must(e.t, e.st.MkdirAll(dir, 0o755))
	e.appendJ(dir, catalog.KindNew, "", false)
	for i := range n {
		e.write(fmt.Sprintf("%s/f%d", dir, i), []byte(fmt.Sprintf("%s-%d", dir, i)), catalog.KindNew)
	}
	e.drain()
}

// claimAway claims every pending entry for another (dead) owner with a short
// lease: to the exporter under test they are "in flight elsewhere", so a
// later rename's entry is not absorbed into them, as when an exporter had
// already started on them.
func (e *env) claimAway() {
	e.t.Helper()
	n, err := e.cat.PendingCount(ctx, "", 0)
	must(e.t, err)
	got, err := e.cat.Claim(ctx, "elsewhere", int(n), time.Second)
	must(e.t, err)
	if int64(len(got)) != n {
		e.t.Fatalf("claimed %d of %d", len(got), n)
	}
}

// mustHold checks that each file fI below the key prefix dir holds the
// content it was written with under orig.
func (e *env) mustHold(dir, orig string, n int) {
	e.t.Helper()
	for i := range n {
		key := fmt.Sprintf("%s%s/f%d", prefix, dir, i)
		if o := e.mustGet(key); string(o.body) != fmt.Sprintf("ExtData/%s-%d", orig, i) {
			e.t.Fatalf("%s: %q", key, o.body)
		}
	}
}

func (e *env) mustNone(dir string, n int) {
	e.t.Helper()
	for i := range n {
		e.mustMissing(fmt.Sprintf("%s%s/f%d", prefix, dir, i))
	}
}

// TestChainedDirectoryRenames: mv a b; mv b c while the first rename's move
// is already under way (its entry claimed, so the second is not folded into
// it). Every file ends under c with its content, nothing is left under a
// or b (issue: the bucket kept a/f1..f3 and had nothing under c/).
func TestChainedDirectoryRenames(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	e.exportedTree("ExtData/a", 3)
	e.stop()
	e.rename("ExtData/a", "ExtData/b")
	e.appendJ("ExtData/b", catalog.KindRename, "ExtData/a", true)
	e.claimAway()
	e.rename("ExtData/b", "ExtData/c")
	e.appendJ("ExtData/c", catalog.KindRename, "ExtData/b", true)
	e.start()
	e.drain()
	e.mustHold("c", "a", 3)
	e.mustNone("a", 3)
	e.mustNone("b", 3)
	e.mustGet(prefix + "c/")
	e.mustMissing(prefix + "a/") // directory objects move too (store.DirXattr)
	e.mustMissing(prefix + "b/")
	for i := range 3 {
		st := e.state(fmt.Sprintf("ExtData/c/f%d", i))
		if st.Origin != "" || st.Stale != "" || st.Flags != hsm.Exists|hsm.Archived {
			t.Fatalf("c/f%d state after the move: %+v", i, st)
		}
	}
	// And back to the first name, again with the first move in flight.
	e.stop()
	e.rename("ExtData/c", "ExtData/x")
	e.appendJ("ExtData/x", catalog.KindRename, "ExtData/c", true)
	e.claimAway()
	e.rename("ExtData/x", "ExtData/a")
	e.appendJ("ExtData/a", catalog.KindRename, "ExtData/x", true)
	e.start()
	e.drain()
	e.mustHold("a", "a", 3)
	e.mustNone("c", 3)
	e.mustNone("x", 3)
	e.mustGet(prefix + "a/")
	e.mustMissing(prefix + "c/")
	e.mustMissing(prefix + "x/")
}

// TestParentRenamedDuringChildMove: the child directory's move is in
// flight when its parent is renamed: the files end below the parent's new
// name.
func TestParentRenamedDuringChildMove(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	must(t, e.st.MkdirAll("ExtData/p", 0o755))
	e.appendJ("ExtData/p", catalog.KindNew, "", false)
	e.exportedTree("ExtData/p/d", 2)
	e.mustGet(prefix + "p/")
	e.mustGet(prefix + "p/d/")
	e.stop()
	e.rename("ExtData/p/d", "ExtData/p/e")
	e.appendJ("ExtData/p/e", catalog.KindRename, "ExtData/p/d", true)
	e.claimAway()
	e.rename("ExtData/p", "ExtData/q")
	e.appendJ("ExtData/q", catalog.KindRename, "ExtData/p", true)
	e.start()
	e.drain()
	e.mustHold("q/e", "p/d", 2)
	e.mustNone("p/d", 2)
	e.mustNone("p/e", 2)
	e.mustGet(prefix + "q/e/")
	for _, k := range []string{"p/", "p/d/", "p/e/", "q/d/"} {
		e.mustMissing(prefix + k)
	}
}

// TestRenameBetweenAssociations: a directory of exported files moves into
// another exporting association: its files are there with their content
// (copied, even across buckets' prefixes); the old objects stay, since the
// old association's policy has no DELETED (invariant 5).
func TestRenameBetweenAssociations(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.ex.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{
		{AssociationId: "dra-00000001", FileSystemPath: "/ExtData", DataRepositoryPath: "s3://" + e.bucket + "/" + prefix, Lifecycle: api.LifecycleAvailable,
			S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged}}}},
		{AssociationId: "dra-00000002", FileSystemPath: "/Other", DataRepositoryPath: "s3://" + e.bucket + "/other/", Lifecycle: api.LifecycleAvailable,
			S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged}}}},
	}, nil))
	e.start()
	must(t, e.st.MkdirAll("Other", 0o755))
	e.exportedTree("ExtData/a", 2)
	e.stop()
	e.rename("ExtData/a", "Other/b")
	e.appendJ("Other/b", catalog.KindRename, "ExtData/a", true)
	e.claimAway()
	e.rename("Other/b", "Other/c")
	e.appendJ("Other/c", catalog.KindRename, "Other/b", true)
	e.start()
	e.drain()
	for i := range 2 {
		if o := e.mustGet(fmt.Sprintf("other/c/f%d", i)); string(o.body) != fmt.Sprintf("ExtData/a-%d", i) {
			t.Fatalf("other/c/f%d: %q", i, o.body)
		}
		e.mustGet(fmt.Sprintf("%sa/f%d", prefix, i)) // no DELETED: kept
	}
}

// TestStaleObjectAfterCrash: a daemon killed after a move recorded its new
// place but before the old object was removed leaves Stale; the next export
// of the file removes the old object — unless another file has taken that
// key with its own content, which stays.
func TestStaleObjectAfterCrash(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	e.write("ExtData/old", []byte("content"), catalog.KindNew)
	e.write("ExtData/taken", []byte("other"), catalog.KindNew)
	e.drain()
	e.stop()
	old := e.mustGet(prefix + "old")
	// As if moved to new and killed before the delete: new's object is
	// in place, its state names old's object as stale.
	e.rename("ExtData/old", "ExtData/new")
	must(t, e.st.MkdirAll("ExtData/x", 0o755))
	_, err := e.s3.S3.CopyObject(ctx, copyInput(e.bucket, prefix+"old", prefix+"new"))
	must(t, err)
	_, err = e.st.UpdateState("ExtData/new", func(st *store.State) error {
		st.Origin, st.Stale, st.StaleETag = "", "ExtData/old", old.etag
		return nil
	})
	must(t, err)
	e.appendJ("ExtData/new", catalog.KindChanged, "", false)
	e.start()
	e.drain()
	e.mustMissing(prefix + "old")
	if st := e.state("ExtData/new"); st.Stale != "" || st.Origin != "" {
		t.Fatalf("state after the stale object went: %+v", st)
	}
	if o := e.mustGet(prefix + "new"); string(o.body) != "content" {
		t.Fatalf("new: %q", o.body)
	}

	// A stale record whose key another file has exported to since (same
	// bytes, so the same ETag): that object is the other file's and stays.
	e.stop()
	taken := e.mustGet(prefix + "taken")
	e.rename("ExtData/taken", "ExtData/moved")
	_, err = e.s3.S3.CopyObject(ctx, copyInput(e.bucket, prefix+"taken", prefix+"moved"))
	must(t, err)
	_, err = e.st.UpdateState("ExtData/moved", func(st *store.State) error {
		st.Origin, st.Stale, st.StaleETag = "", "ExtData/taken", taken.etag
		return nil
	})
	must(t, err)
	e.write("ExtData/taken", []byte("other"), catalog.KindNew) // a new file, same bytes
	e.start()
	e.drain()
	e.appendJ("ExtData/moved", catalog.KindChanged, "", false)
	e.drain()
	if o := e.mustGet(prefix + "taken"); string(o.body) != "other" {
		t.Fatalf("taken: %q", o.body)
	}
	if st := e.state("ExtData/moved"); st.Stale != "" {
		t.Fatalf("stale record kept: %+v", st)
	}
}

func copyInput(bucket, src, dst string) *s3.CopyObjectInput {
	return &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(dst), CopySource: aws.String(copySource(bucket, src))}
}

// TestRenameOutAndBackIn: a directory of exported files moves out of every
// association (nothing happens to its objects: no DELETED), then back in
// under another name (the mount journals NEW for every entry below it):
// the files are copied from where their objects are, which then go.
func TestRenameOutAndBackIn(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	e.exportedTree("ExtData/a", 2)
	e.rename("ExtData/a", "outside")
	e.appendJ("outside", catalog.KindRename, "ExtData/a", true)
	e.drain()
	e.mustHold("a", "a", 2)
	e.stop()
	e.rename("outside", "ExtData/b")
	e.appendJ("ExtData/b", catalog.KindRename, "outside", true)
	for i := range 2 {
		e.appendJ(fmt.Sprintf("ExtData/b/f%d", i), catalog.KindNew, "", false)
	}
	bytesBefore := e.ex.Stats().BytesExported
	e.start()
	e.drain()
	e.mustHold("b", "a", 2)
	e.mustNone("a", 2)
	if b := e.ex.Stats().BytesExported; b != bytesBefore {
		t.Fatalf("moving exported files back in uploaded %d bytes; want copies", b-bytesBefore)
	}
}

// TestReleasedRenamedNameReused: a released file (its data only in the
// repository) is renamed and a new file is written under its old name; the
// new file's upload must not overwrite the object before the released
// file's move has copied it (errRenamePending). The rename's move is held
// up (claimed elsewhere) so the new file's entry comes first.
func TestReleasedRenamedNameReused(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	e.write("ExtData/in.nc", []byte("input data"), catalog.KindNew)
	e.drain()
	e.stop()
	// Released: the data is the object's only.
	_, err := e.st.UpdateState("ExtData/in.nc", func(st *store.State) error {
		b, err := store.NewBitmap(st.Size, 4)
		st.Flags |= hsm.Released
		st.Chunks = b
		return err
	})
	must(t, err)
	e.rename("ExtData/in.nc", "ExtData/in.nc.bak")
	e.appendJ("ExtData/in.nc.bak", catalog.KindRename, "ExtData/in.nc", false)
	e.claimAway()
	e.write("ExtData/in.nc", []byte("new input"), catalog.KindNew)
	e.start()
	e.drain()
	if o := e.mustGet(prefix + "in.nc.bak"); string(o.body) != "input data" {
		t.Fatalf("in.nc.bak: %q", o.body)
	}
	if o := e.mustGet(prefix + "in.nc"); string(o.body) != "new input" {
		t.Fatalf("in.nc: %q", o.body)
	}
	if st := e.state("ExtData/in.nc.bak"); st.Origin != "" || st.ETag != e.mustGet(prefix+"in.nc.bak").etag {
		t.Fatalf("in.nc.bak state %+v", st)
	}
}

// TestLongDirectoryName: a directory whose name has 254 bytes holds an
// exported file. MinIO can store no directory object for it
// (XMinioInvalidObjectName): the directory's NEW is parked and reported,
// never retried forever; once file and directory are deleted, both DELETED
// entries end although MinIO's DeleteObjects answer names the directory
// key differently (it had no result for it, and `hsm wait` hung after
// pjdfstest).
func TestLongDirectoryName(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.start()
	dir := "ExtData/" + strings.Repeat("d", 254)
	must(t, e.st.MkdirAll(dir, 0o755))
	e.appendJ(dir, catalog.KindNew, "", false)
	e.write(dir+"/f", []byte("f"), catalog.KindNew)
	e.drain()
	e.mustGet(prefix + dir[len("ExtData/"):] + "/f")
	if parked, err := e.cat.ParkedEntries(ctx, "", "", 10); err != nil || len(parked) != 1 || parked[0].Path != dir {
		t.Fatalf("parked: %+v %v; want the directory's NEW", parked, err)
	}
	must(t, e.st.Unlink(dir+"/f"))
	e.appendJ(dir+"/f", catalog.KindDeleted, "", false)
	must(t, e.st.Rmdir(dir))
	e.appendJ(dir, catalog.KindDeleted, "", false)
	e.drain()
	e.mustMissing(prefix + dir[len("ExtData/"):] + "/f")
	if n, _ := e.cat.PendingCount(ctx, "", 0); n != 0 {
		t.Fatalf("%d entries pending", n)
	}
}

// TestTreeMoveExportsOrphanedContent: a file never exported whose own
// entry is gone (an export that found its old name gone in a rename race
// ended it) is exported by its directory's move, not left out.
func TestTreeMoveExportsOrphanedContent(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	must(t, e.st.MkdirAll("ExtData/d", 0o755))
	f, err := e.st.OpenFile("ExtData/d/orphan", unix.O_WRONLY|unix.O_CREAT, 0o644)
	must(t, err)
	_, err = f.Write([]byte("closed"))
	must(t, err)
	must(t, f.Close())
	e.rename("ExtData/d", "ExtData/e")
	e.appendJ("ExtData/e", catalog.KindRename, "ExtData/d", true)
	e.drain()
	if o := e.mustGet(prefix + "e/orphan"); string(o.body) != "closed" {
		t.Fatalf("e/orphan: %q", o.body)
	}
}

// TestRenamedBackAfterChildExport: mv d3 d4, then a file and a new
// subdirectory below d4 are exported under d4 while the directory's own
// RENAME is still waiting, then mv d4 d3. The files and the subdirectory
// end under d3 and nothing stays under d4 (TestModel: the rename back was
// folded into a CHANGED of d3, which moved nothing, and the file's object
// stayed under d4).
func TestRenamedBackAfterChildExport(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	e.exportedTree("ExtData/d3", 2)
	e.stop()
	e.rename("ExtData/d3", "ExtData/d4")
	e.appendJ("ExtData/d4", catalog.KindRename, "ExtData/d3", true)
	e.write("ExtData/d4/f0", []byte("ExtData/d3-0 changed"), catalog.KindChanged)
	must(t, e.st.MkdirAll("ExtData/d4/sub", 0o755))
	e.appendJ("ExtData/d4/sub", catalog.KindNew, "", false)
	// Hold the directory's entry back; let the others go.
	got, err := e.cat.Claim(ctx, "elsewhere", 10, time.Hour)
	must(t, err)
	for _, je := range got {
		retry := time.Now()
		if je.Path == "ExtData/d4" {
			retry = retry.Add(time.Hour)
		}
		must(t, e.cat.Defer(ctx, je, "test", retry))
	}
	e.start()
	testutil.Eventually(t, 30*time.Second, "d4/f0 and d4/sub exported", func() bool {
		n, err := e.cat.PendingCount(ctx, "ExtData/d4/f0", 0)
		m, err2 := e.cat.PendingCount(ctx, "ExtData/d4/sub", 0)
		return err == nil && err2 == nil && n+m == 0
	})
	e.stop()
	e.mustGet(prefix + "d4/f0")
	e.mustGet(prefix + "d4/sub/")
	e.rename("ExtData/d4", "ExtData/d3")
	e.appendJ("ExtData/d3", catalog.KindRename, "ExtData/d4", true)
	e.start()
	e.drain()
	if o := e.mustGet(prefix + "d3/f0"); string(o.body) != "ExtData/d3-0 changed" {
		t.Fatalf("d3/f0: %q", o.body)
	}
	if o := e.mustGet(prefix + "d3/f1"); string(o.body) != "ExtData/d3-1" {
		t.Fatalf("d3/f1: %q", o.body)
	}
	e.mustGet(prefix + "d3/sub/")
	e.mustNone("d4", 2)
	e.mustMissing(prefix + "d4/sub/")
	e.mustMissing(prefix + "d4/")
	for _, f := range []string{"f0", "f1"} {
		// An Origin naming the file's own path means "here", as "" does.
		p := "ExtData/d3/" + f
		if st := e.state(p); (st.Origin != "" && st.Origin != p) || st.Stale != "" || st.Flags != hsm.Exists|hsm.Archived {
			t.Fatalf("d3/%s state: %+v", f, st)
		}
	}
}

// release marks the exported file rel released: its data is its object's
// only (what `hsm release` leaves).
func (e *env) release(rel string) {
	e.t.Helper()
	_, err := e.st.UpdateState(rel, func(st *store.State) error {
		b, err := store.NewBitmap(st.Size, 4)
		st.Flags |= hsm.Released
		st.Chunks = b
		return err
	})
	must(e.t, err)
}

// TestReleasedFilesSwapped: two released files swap names (mv a t; mv b
// a; mv t b) before either move is exported. Each move writes the key the
// other's data is still under.
func TestReleasedFilesSwapped(t *testing.T) { swapReleased(t, false) }

// TestReleasedFilesSwappedFirstMoveInFlight: the swap again, with the
// first rename's move already claimed when the others come, so the chain
// a → t → b stays two entries (RENAME t ← a, RENAME b ← t): the move that
// writes key a must find file A under b, through the pending renames.
func TestReleasedFilesSwappedFirstMoveInFlight(t *testing.T) { swapReleased(t, true) }

func swapReleased(t *testing.T, firstInFlight bool) {
	e := releasedPair(t)
	for i, mv := range [][2]string{{"a", "t"}, {"b", "a"}, {"t", "b"}} {
		e.rename("ExtData/"+mv[0], "ExtData/"+mv[1])
		e.appendJ("ExtData/"+mv[1], catalog.KindRename, "ExtData/"+mv[0], false)
		if i == 0 && firstInFlight {
			e.claimAway()
		}
	}
	e.start()
	e.drain()
	e.mustSwapped()
}

// TestReleasedFileMovedOut: a released file, and a directory holding one,
// renamed out of the association (whose policy deletes): their data, only
// in their objects, is fetched before the objects go (TestModel: a
// released file moved outside read EIO; its object had been deleted).
func TestReleasedFileMovedOut(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.start()
	e.write("ExtData/f", []byte("content of f"), catalog.KindNew)
	e.exportedTree("ExtData/d", 2)
	e.drain()
	e.stop()
	e.release("ExtData/f")
	e.release("ExtData/d/f1")
	e.rename("ExtData/f", "out-f")
	e.appendJ("out-f", catalog.KindRename, "ExtData/f", false)
	e.rename("ExtData/d", "out-d")
	e.appendJ("out-d", catalog.KindRename, "ExtData/d", true)
	e.start()
	e.drain()
	e.mustMissing(prefix + "f")
	for p, want := range map[string]string{"out-f": "content of f", "out-d/f1": "ExtData/d-1", "out-d/f0": "ExtData/d-0"} {
		st := e.state(p)
		if st.Flags.Has(hsm.Released) {
			t.Errorf("%s is still released after its object went: %+v", p, st)
		}
		got, err := os.ReadFile(filepath.Join(e.st.Root(), p))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
	}
}

// TestReleasedFilesSwappedFirstMoveSkipped: the swap with the first move
// (RENAME t ← a, claimed when the others came) run after t was renamed on
// to b: it moves nothing, and the later RENAME(b ← t) must keep key a safe
// from the move that writes it (B's), or A, still only under a, is lost.
// The moves run one at a time, in the order that lost A.
func TestReleasedFilesSwappedFirstMoveSkipped(t *testing.T) {
	e := releasedPair(t)
	e.rename("ExtData/a", "ExtData/t")
	e.appendJ("ExtData/t", catalog.KindRename, "ExtData/a", false)
	e.claimAway()
	for _, mv := range [][2]string{{"b", "a"}, {"t", "b"}} {
		e.rename("ExtData/"+mv[0], "ExtData/"+mv[1])
		e.appendJ("ExtData/"+mv[1], catalog.KindRename, "ExtData/"+mv[0], false)
	}
	time.Sleep(1100 * time.Millisecond) // the claim elsewhere expires
	e.only("ExtData/t")                 // moves nothing: t is gone
	e.only("ExtData/a")                 // B to key a
	e.only("ExtData/b")                 // A to key b
	e.mustSwapped()
}

// TestReleasedFilesSwappedLastMoveUnjournaled: the swap with the last
// rename (mv t b) made in the store but not journaled yet when B's move
// writes key a: the mount appends its RENAME after the store renamed, and
// only its move record says where t went. The move must find A under b
// through that record and make it local first, or A, still only under key
// a, is lost (the e2e swap, "released file's object is gone or changed").
func TestReleasedFilesSwappedLastMoveUnjournaled(t *testing.T) {
	e := releasedPair(t)
	e.rename("ExtData/a", "ExtData/t")
	e.appendJ("ExtData/t", catalog.KindRename, "ExtData/a", false)
	e.claimAway()
	e.rename("ExtData/b", "ExtData/a")
	e.appendJ("ExtData/a", catalog.KindRename, "ExtData/b", false)
	id, err := e.cat.BeginMove(ctx, "ExtData/t", "ExtData/b")
	must(t, err)
	e.rename("ExtData/t", "ExtData/b")
	time.Sleep(1100 * time.Millisecond) // the claim elsewhere expires
	e.only("ExtData/a")                 // B to key a, with A's RENAME not journaled
	must(t, e.cat.Append(ctx, catalog.JournalAppend{Path: "ExtData/b", Kind: catalog.KindRename, OldPath: "ExtData/t", EndMove: id}))
	e.start()
	e.drain()
	e.mustSwapped()
}

// TestReleasedFilesSwappedRenamedDuringMove: the swap with the last two
// renames made while the first one's move runs, between its look at the
// new name (t, there) and its open of the file (gone to b): it moves
// nothing, and must then make the later RENAME(b ← t) a rename from a
// (ForwardRenames), or nothing keeps key a — A's only data — safe from
// B's move, which writes it (the e2e swap lost A so: its log showed the
// first move done "skipped" and B's move finding no rename from a). B's
// move runs before A's, one at a time, the order that lost A.
func TestReleasedFilesSwappedRenamedDuringMove(t *testing.T) {
	e := releasedPair(t)
	e.rename("ExtData/a", "ExtData/t")
	e.appendJ("ExtData/t", catalog.KindRename, "ExtData/a", false)
	var fnErr error
	cat := &renameDuring{Catalog: e.cat, path: "ExtData/t", fn: func() {
		// mv b a; mv t b, as the mount makes them.
		mu := e.st.MoveLock()
		mu.Lock()
		fnErr = errors.Join(e.st.MarkOrigins(ctx, "ExtData/b"), e.st.Rename("ExtData/b", "ExtData/a", 0))
		mu.Unlock()
		fnErr = errors.Join(fnErr, e.cat.Append(ctx, catalog.JournalAppend{Path: "ExtData/a", Kind: catalog.KindRename, OldPath: "ExtData/b"}))
		id, err := e.cat.BeginMove(ctx, "ExtData/t", "ExtData/b")
		mu.Lock()
		fnErr = errors.Join(fnErr, err, e.st.MarkOrigins(ctx, "ExtData/t"), e.st.Rename("ExtData/t", "ExtData/b", 0))
		mu.Unlock()
		fnErr = errors.Join(fnErr, e.cat.Append(ctx, catalog.JournalAppend{Path: "ExtData/b", Kind: catalog.KindRename, OldPath: "ExtData/t", EndMove: id}))
		// B's move (a ← b) runs before A's (b ← t), as in the e2e run
		// that lost A.
		hs, err := e.cat.Claim(ctx, "hold", 10, time.Hour)
		fnErr = errors.Join(fnErr, err)
		for _, je := range hs {
			retry := time.Now()
			if je.Path == "ExtData/b" {
				retry = retry.Add(1500 * time.Millisecond)
			}
			fnErr = errors.Join(fnErr, e.cat.Defer(ctx, je, "test", retry))
		}
	}}
	e.ex = e.exporterWith(cat, 1)
	e.start()
	e.drain()
	must(t, fnErr)
	if !cat.ran.Load() {
		t.Fatal("the renames were not made during the move")
	}
	e.mustSwapped()
}

// renameDuring is the catalog with renames of the mount falling into an
// export: fn runs once, at the first RenamesFrom asking about path (the
// move of path looks for renames from its key before it opens the file).
type renameDuring struct {
	catalog.Catalog
	path string
	fn   func()
	ran  atomic.Bool
}

func (c *renameDuring) RenamesFrom(ctx context.Context, paths []string, limit int) ([]catalog.JournalEntry, error) {
	if slices.Contains(paths, c.path) && c.ran.CompareAndSwap(false, true) {
		c.fn()
	}
	return c.Catalog.RenamesFrom(ctx, paths, limit)
}

// TestReleasedFilesSwappedJournaledWhileFollowed: B's move follows A
// through the pending RENAME(t ← a) to t, gone: A's last rename (mv t b)
// was made in the store, and its RENAME is appended — removing its move
// record — between the move's read of the journal (no RENAME from t yet)
// and its read of the move records (none any more). It must find A under
// b, or it writes key a, A's only data (the e2e swap lost A so). The
// append makes RENAME(b ← t) when RENAME(t ← a) is claimed at that moment
// (the journal must be read again after the records), and RENAME(b ← a)
// in its place when not (the renames must be walked again).
func TestReleasedFilesSwappedJournaledWhileFollowed(t *testing.T) {
	for _, claimed := range []bool{true, false} {
		t.Run(fmt.Sprintf("first rename claimed %v", claimed), func(t *testing.T) {
			e := releasedPair(t)
			e.rename("ExtData/a", "ExtData/t")
			e.appendJ("ExtData/t", catalog.KindRename, "ExtData/a", false)
			e.rename("ExtData/b", "ExtData/a")
			e.appendJ("ExtData/a", catalog.KindRename, "ExtData/b", false)
			id, err := e.cat.BeginMove(ctx, "ExtData/t", "ExtData/b")
			must(t, err)
			e.rename("ExtData/t", "ExtData/b")
			// B's move runs alone: A's first RENAME is held (claimed by
			// another exporter, or waiting an hour).
			_, err = e.cat.Reschedule(ctx, "")
			must(t, err)
			es, err := e.cat.Claim(ctx, "hold", 10, time.Hour)
			must(t, err)
			var first catalog.JournalEntry
			for _, je := range es {
				retry := time.Now()
				if je.Path == "ExtData/t" {
					first = je
					if claimed {
						continue
					}
					retry = retry.Add(time.Hour)
				}
				must(t, e.cat.Defer(ctx, je, "test", retry))
			}
			var fnErr error
			cat := &journalOnMoves{Catalog: e.cat, fn: func() {
				fnErr = e.cat.Append(ctx, catalog.JournalAppend{Path: "ExtData/b", Kind: catalog.KindRename, OldPath: "ExtData/t", EndMove: id})
				// A's move waits until B's is done.
				es, err := e.cat.Claim(ctx, "hold", 10, time.Hour)
				fnErr = errors.Join(fnErr, err)
				for _, je := range es {
					fnErr = errors.Join(fnErr, e.cat.Defer(ctx, je, "test", time.Now().Add(1500*time.Millisecond)))
				}
			}}
			e.ex = e.exporterWith(cat, 4)
			e.start()
			testutil.Eventually(t, 30*time.Second, "B's move", func() bool {
				n, err := e.cat.PendingCount(ctx, "ExtData/a", 0)
				return err == nil && n == 0
			})
			must(t, fnErr)
			if !cat.ran.Load() {
				t.Fatal("the move records were never read")
			}
			if claimed {
				must(t, e.cat.Defer(ctx, first, "test", time.Now()))
			} else {
				_, err = e.cat.Reschedule(ctx, "")
				must(t, err)
			}
			e.ex.Notify()
			e.drain()
			e.mustSwapped()
		})
	}
}

// journalOnMoves is the catalog with the mount's append of a RENAME
// falling between an export's reads: fn runs once, before the first read
// of the move records.
type journalOnMoves struct {
	catalog.Catalog
	fn  func()
	ran atomic.Bool
}

func (c *journalOnMoves) Moves(ctx context.Context) ([]catalog.Move, error) {
	if c.ran.CompareAndSwap(false, true) {
		c.fn()
	}
	return c.Catalog.Moves(ctx)
}

// exporterWith is an exporter of e over cat with workers workers, with
// e's associations.
func (e *env) exporterWith(cat catalog.Catalog, workers int) *Exporter {
	ex := e.exporterOver("A", cat, workers)
	ex.SetAssociations(e.ex.table())
	return ex
}

// only runs the exporter on the entry of path alone: every other entry
// waits an hour.
func (e *env) only(path string) {
	t := e.t
	t.Helper()
	_, err := e.cat.Reschedule(ctx, "")
	must(t, err)
	n, err := e.cat.PendingCount(ctx, "", 0)
	must(t, err)
	got, err := e.cat.Claim(ctx, "hold", int(n), time.Hour)
	must(t, err)
	for _, je := range got {
		retry := time.Now().Add(time.Hour)
		if je.Path == path {
			retry = time.Now()
		}
		must(t, e.cat.Defer(ctx, je, "test", retry))
	}
	e.start()
	testutil.Eventually(t, 30*time.Second, path+" exported", func() bool {
		n, err := e.cat.PendingCount(ctx, path, 0)
		return err == nil && n == 0
	})
	e.stop()
}

// releasedPair exports ExtData/a and ExtData/b and releases both: their
// data is only in their objects.
func releasedPair(t *testing.T) *env {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	e.start()
	e.write("ExtData/a", []byte("content of A"), catalog.KindNew)
	e.write("ExtData/b", []byte("content of B, longer"), catalog.KindNew)
	e.drain()
	e.stop()
	e.release("ExtData/a")
	e.release("ExtData/b")
	return e
}

// mustSwapped checks that key a holds B's content and key b A's.
func (e *env) mustSwapped() {
	e.t.Helper()
	if o := e.mustGet(prefix + "a"); string(o.body) != "content of B, longer" {
		e.t.Errorf("a: %q", o.body)
	}
	if o := e.mustGet(prefix + "b"); string(o.body) != "content of A" {
		e.t.Errorf("b: %q", o.body)
	}
}
