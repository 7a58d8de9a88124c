package fusefs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestLatePassthroughWriter: a writer that opens an exported file already
// open in passthrough mode (a reader first) writes through the kernel,
// unseen by the daemon. Its open makes the file dirty and puts an entry in
// the journal at once (what a restarted daemon would find if this one died
// now); exports tried while it is open wait, leaving the file dirty, the
// entry pending and the object as it was; after its close the object has
// the final content and the file is clean.
func TestLatePassthroughWriter(t *testing.T) {
	je := mountJournal(t, Options{}, true)
	rel := "ExtData/late"
	must(t, os.WriteFile(je.m(rel), []byte("first version"), 0o644))
	je.wait(t)
	exported, err := je.st.GetState(rel)
	must(t, err)
	if exported.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after export: %v", exported.Flags)
	}

	je.openPassthroughReader(t, rel)
	w, err := os.OpenFile(je.m(rel), os.O_WRONLY, 0)
	must(t, err)
	defer w.Close()
	// At once, before any write: dirty, a newer version, an entry pending.
	st, err := je.st.GetState(rel)
	must(t, err)
	if !st.Flags.Has(hsm.Dirty) || st.Version <= exported.Version {
		t.Fatalf("after the writer's open: %+v, want dirty above version %d", st, exported.Version)
	}
	// What a daemon starting now (this one killed) would read: the
	// catalog file through a connection of its own.
	cat2, err := catalog.OpenSQLite(context.Background(), filepath.Join(je.st.MetaPath(), catalog.DefaultFile), catalog.Options{})
	must(t, err)
	p, err := cat2.Pending(context.Background(), rel, "", 10)
	must(t, cat2.Close())
	must(t, err)
	if len(p) != 1 || p[0].Path != rel {
		t.Fatalf("after the writer's open the journal holds %v, want %s pending", entriesOf(p), rel)
	}

	writes := je.fsys.Stats.Writes.Load()
	_, err = w.WriteAt([]byte("SECOND"), 0)
	must(t, err)
	if je.fsys.Stats.Writes.Load() != writes {
		testutil.Need(t, errors.New("the write went through the daemon, not passthrough"))
	}
	// The exporter tries the entry (the open notified it) and must wait:
	// an export that ends (the entry completed, the file clean) is the bug.
	testutil.Eventually(t, 20*time.Second, "two export attempts while the writer is open", func() bool {
		st, err := je.st.GetState(rel)
		return je.ex.Stats().WriterOpen >= 2 || len(je.pending(t, rel)) == 0 || (err == nil && !st.Flags.Has(hsm.Dirty))
	})
	if st, err := je.st.GetState(rel); err != nil || !st.Flags.Has(hsm.Dirty) {
		t.Fatalf("while the writer is open: %+v, %v; want dirty", st, err)
	}
	p = je.pending(t, rel)
	if len(p) != 1 || !strings.Contains(p[0].LastError, "busy") {
		t.Fatalf("while the writer is open the journal holds %+v, want %s pending, waiting (busy)", p, rel)
	}
	if _, err := je.ex.Export(context.Background(), rel); !errors.Is(err, exporter.ErrWriterOpen) {
		t.Fatalf("Export while the writer is open: %v, want ErrWriterOpen", err)
	}
	if got := string(je.s3Body(t, "data/late")); got != "first version" {
		t.Fatalf("object %q while the writer is open, want the first version", got)
	}
	if f := je.ex.Stats().Failures; f[exporter.CodeFileChanged]+f[exporter.CodeUnknown] != 0 {
		t.Fatalf("waiting counted as failures: %v", f)
	}

	_, err = w.WriteAt([]byte("FINAL version, longer"), 0)
	must(t, err)
	must(t, w.Close())
	je.wait(t)
	want, err := os.ReadFile(je.s(rel))
	must(t, err)
	if got := je.s3Body(t, "data/late"); string(got) != string(want) || string(want) != "FINAL version, longer" {
		t.Fatalf("object %q after the writer closed, file %q", got, want)
	}
	if st, err := je.st.GetState(rel); err != nil || st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after the export: %+v, %v; want exists archived", st, err)
	}
	t.Logf("exporter: %+v", je.ex.Stats())
}

// openPassthroughReader opens rel through the mount for reading, open until
// the test ends, and requires the kernel to have taken passthrough.
func (je *jenv) openPassthroughReader(t *testing.T, rel string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, rel+" free to take passthrough", func() bool { return je.fsys.modeFree(rel) })
	pt := je.fsys.Stats.PassthroughOpens.Load()
	r, err := os.Open(je.m(rel))
	must(t, err)
	t.Cleanup(func() { r.Close() })
	if je.fsys.Stats.PassthroughOpens.Load() == pt {
		testutil.Need(t, errors.New("the kernel offers no passthrough here (Linux ≥ 6.9 and CAP_SYS_ADMIN)"))
	}
}
