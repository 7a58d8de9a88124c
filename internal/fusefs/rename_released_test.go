package fusefs

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

// TestRenameReleasedFile: a released (not yet fetched) file, or a directory
// holding one, renamed through the mount keeps reading its object — without
// an exporter (the object stays under the old key) and with one, after the
// exporter moved the object to the new key and removed the old one.
func TestRenameReleasedFile(t *testing.T) {
	for _, withExporter := range []bool{false, true} {
		name := "no export"
		if withExporter {
			name = "exported rename"
		}
		t.Run(name, func(t *testing.T) {
			var opt Options
			var jnl *writepath.CatalogJournal
			if withExporter {
				jnl = writepath.NewCatalogJournal(nil, nil)
				opt.Journal = jnl
			}
			le := mountLazy(t, opt, importer.Config{ChunkSize: 1 << 20})
			a := randBody(24*mib+5, 7)
			b := randBody(2*mib, 8)
			le.put(t, "data/a", a, nil)
			le.put(t, "data/dir/b", b, nil)
			if withExporter {
				ex, err := exporter.New(exporter.Config{
					Store: le.st, Catalog: le.cat, S3: le.s3,
					Engine: transfer.New(le.s3, transfer.Options{Concurrency: 4}),
					Owner:  "t", Poll: 50 * time.Millisecond, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
				})
				must(t, err)
				as := []api.DataRepositoryAssociation{{
					AssociationId: "dra-0123456789abcdef0", FileSystemPath: "/ExtData",
					DataRepositoryPath: "s3://" + le.bucket + "/data/", Lifecycle: api.LifecycleAvailable,
					S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{
						Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}},
				}}
				ex.SetAssociations(dra.NewTable(as, nil))
				*jnl = *writepath.NewCatalogJournal(le.cat, ex.Notify)
				jnl.SetAssociations(dra.NewTable(as, nil))
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); _ = ex.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
				defer func() {
					wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer wcancel()
					if r, err := ex.Wait(wctx, ""); err != nil {
						t.Errorf("wait: %v %v", err, r.Pending)
					}
				}()
			}
			// Read the head of a: partly fetched, still released.
			f, err := os.Open(le.m("ExtData/a"))
			must(t, err)
			head := make([]byte, 4096)
			_, err = f.ReadAt(head, 0)
			must(t, err)
			must(t, f.Close())
			if _, err := os.Stat(le.m("ExtData/dir/b")); err != nil {
				t.Fatal(err)
			}
			must(t, os.Rename(le.m("ExtData/a"), le.m("ExtData/a2")))
			must(t, os.Rename(le.m("ExtData/dir"), le.m("ExtData/dir2")))
			if withExporter {
				wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer wcancel()
				jw := &jenv{s3: le.s3, bucket: le.bucket}
				for _, k := range []string{"data/a", "data/dir/b"} {
					for jw.s3Body(t, k) != nil && wctx.Err() == nil {
						time.Sleep(20 * time.Millisecond)
					}
				}
				if got := jw.s3Body(t, "data/a2"); !bytes.Equal(got, a) {
					t.Fatal("object not moved to the new name")
				}
			}
			st, err := le.st.GetState("ExtData/a2")
			must(t, err)
			if !st.Flags.Has(hsm.Released) {
				t.Fatalf("a2 is not released any more (%v): the test would prove nothing", st.Flags)
			}
			if got := read(t, le.m("ExtData/a2")); got != string(a) {
				t.Fatal("renamed released file read wrong bytes")
			}
			if got := read(t, le.m("ExtData/dir2/b")); got != string(b) {
				t.Fatal("released file in a renamed directory read wrong bytes")
			}
		})
	}
}
