package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// A daemon that went down with its machine leaves its running marker with
// that boot's id; the next start queues an export task that exports what
// the journal lost (here: a file written to the store with no journal
// entry at all), and a clean stop removes the marker.
func TestUncleanBootExportTask(t *testing.T) {
	e := startExportEnv(t, nil)
	c := e.srv.Client(t)
	bucket := e.srv.Bucket(t)
	e.exportData(bucket)
	meta := filepath.Join(e.st, ".ferry")
	if _, err := os.Stat(runningMarker(meta, e.mp)); err != nil {
		t.Fatalf("no running marker while mounted: %v", err)
	}
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(runningMarker(meta, e.mp)); !os.IsNotExist(err) {
		t.Fatalf("running marker after a clean stop: %v", err)
	}
	// The machine "crashed": a marker of another boot, and a file whose
	// data landed while its journal entry did not.
	if err := os.WriteFile(runningMarker(meta, e.mp), []byte("00000000-1111-2222-3333-444444444444\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.st, "data", "lost.txt"), []byte("lost"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.startExport(nil)
	testutil.Eventually(t, 60*time.Second, "the lost file exported by the recovery task", func() bool {
		body, ok := getObject(t, c, bucket, "p/lost.txt")
		return ok && body == "lost"
	})
	var out api.DescribeDataRepositoryTasksResponse
	if err := e.c.Call(context.Background(), api.OpDescribeTasks, api.DescribeDataRepositoryTasksRequest{}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.DataRepositoryTasks) != 1 || out.DataRepositoryTasks[0].Type != api.TaskExportToRepository {
		t.Fatalf("tasks after an unclean boot: %+v", out.DataRepositoryTasks)
	}
}

// A daemon killed between a directory rename in the store and its journal
// entry leaves a move record; the next start journals the rename before
// the exporter runs, so a file closed under the old name (its entry still
// pending) is exported under the new name instead of being dropped as
// gone, and the objects already exported move.
func TestRecoverMovesAtStart(t *testing.T) {
	e := startExportEnv(t, nil)
	c := e.srv.Client(t)
	bucket := e.srv.Bucket(t)
	e.exportData(bucket)
	if err := os.MkdirAll(filepath.Join(e.mp, "data", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.mp, "data", "d", "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Exported means recorded in the file's state too: the object alone
	// can land before the state does, and a stop between the two leaves
	// an object no file claims (the rename then leaves it under d).
	sto, err := store.Open(e.st)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "d/f exported", func() bool {
		_, ok := getObject(t, c, bucket, "p/d/f")
		st, err := sto.GetState("data/d/f")
		return ok && err == nil && st.Flags.Has(hsm.Exists|hsm.Archived)
	})
	sto.Close()
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	// What the dead daemon left: g closed (entry pending), the move
	// record, the origins, the rename made, no RENAME entry.
	ctx := context.Background()
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(e.st, ".ferry", catalog.DefaultFile), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.st, "data", "d", "g"), []byte("g"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cat.Append(ctx, catalog.JournalAppend{Path: "data/d/g", Kind: catalog.KindNew}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.BeginMove(ctx, "data/d", "data/e"); err != nil {
		t.Fatal(err)
	}
	if err := cat.Close(); err != nil {
		t.Fatal(err)
	}
	// The mount records where the objects are before it renames
	// (store.MarkOrigins).
	sto, err = store.Open(e.st)
	if err != nil {
		t.Fatal(err)
	}
	err = sto.MarkOrigins(ctx, "data/d")
	sto.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.st, "data", "d"), filepath.Join(e.st, "data", "e")); err != nil {
		t.Fatal(err)
	}
	e.startExport(nil)
	testutil.Eventually(t, 60*time.Second, "e/g exported and d/f moved to e/f", func() bool {
		g, gok := getObject(t, c, bucket, "p/e/g")
		f, fok := getObject(t, c, bucket, "p/e/f")
		_, old := getObject(t, c, bucket, "p/d/f")
		return gok && g == "g" && fok && f == "f" && !old
	})
}
