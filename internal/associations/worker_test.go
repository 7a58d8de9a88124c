package associations

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// slowImporter stands in for the importer only to make a batch import last
// as long as the test wants (a real import of a small tree ends at once):
// it reports progress, then waits for release or cancellation.
type slowImporter struct {
	mu       sync.Mutex
	sets     int
	started  chan struct{}
	release  chan struct{}
	canceled chan struct{}
}

func (p *slowImporter) SetAssociations(*dra.Table) {
	p.mu.Lock()
	p.sets++
	p.mu.Unlock()
}
func (p *slowImporter) ImportAll(ctx context.Context, _ api.DataRepositoryAssociation, progress func(importer.ImportCounts)) (importer.ImportCounts, error) {
	close(p.started)
	s := importer.ImportCounts{Objects: 1000, Files: 990, Dirs: 10}
	for {
		progress(s)
		select {
		case <-p.release:
			return s, nil
		case <-ctx.Done():
			close(p.canceled)
			return s, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func newTestAssociations(t *testing.T, imp Importer) (*Worker, string) {
	t.Helper()
	srv := testutil.SharedMinIO(t)
	c := srv.Client(t)
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Open(context.Background(), "", catalog.Options{StoreRoot: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	m := New(Config{FileSystemId: "fs-0123456789abcdef0", Catalog: cat, Store: st, S3: c, Importer: imp, RecheckInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, srv.Bucket(t)
}

func describeOne(t *testing.T, m *Worker, id string) api.DataRepositoryAssociation {
	t.Helper()
	resp, err := m.Describe(context.Background(), api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Associations[0]
}

// A running batch import shows its progress in FerryStatus.BatchImport,
// and a second create waits its turn (CREATING) instead of failing; when
// the import ends both become AVAILABLE.
func TestBatchImportProgressAndQueue(t *testing.T) {
	p := &slowImporter{started: make(chan struct{}), release: make(chan struct{}), canceled: make(chan struct{})}
	m, bucket := newTestAssociations(t, p)
	yes := true
	ctx := context.Background()
	r1, err := m.Create(ctx, api.CreateDataRepositoryAssociationRequest{FileSystemId: m.fsID, FileSystemPath: "/a", DataRepositoryPath: "s3://" + bucket + "/a", BatchImportMetaDataOnCreate: &yes})
	if err != nil {
		t.Fatal(err)
	}
	id := r1.Association.AssociationId
	if r1.Association.FerryStatus == nil || r1.Association.FerryStatus.BatchImport.State != api.BatchImportPending {
		t.Errorf("create answered %+v", r1.Association.FerryStatus)
	}
	<-p.started
	r2, err := m.Create(ctx, api.CreateDataRepositoryAssociationRequest{FileSystemId: m.fsID, FileSystemPath: "/b", DataRepositoryPath: "s3://" + bucket + "/b"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "progress saved", func() bool {
		a := describeOne(t, m, id)
		b := a.FerryStatus.BatchImport
		return a.Lifecycle == api.LifecycleCreating && b.State == api.BatchImportRunning && b.Objects == 1000 && b.StartTime != nil
	})
	if a := describeOne(t, m, r2.Association.AssociationId); a.Lifecycle != api.LifecycleCreating {
		t.Errorf("queued create is %s", a.Lifecycle)
	}
	close(p.release)
	testutil.Eventually(t, 10*time.Second, "both AVAILABLE", func() bool {
		return describeOne(t, m, id).Lifecycle == api.LifecycleAvailable && describeOne(t, m, r2.Association.AssociationId).Lifecycle == api.LifecycleAvailable
	})
	b := describeOne(t, m, id).FerryStatus.BatchImport
	if b.State != api.BatchImportSucceeded || b.Files != 990 || b.EndTime == nil {
		t.Errorf("final batch import %+v", b)
	}
}

// A delete during the batch import stops it and removes the association.
func TestDeleteCancelsBatchImport(t *testing.T) {
	p := &slowImporter{started: make(chan struct{}), release: make(chan struct{}), canceled: make(chan struct{})}
	m, bucket := newTestAssociations(t, p)
	yes := true
	ctx := context.Background()
	r, err := m.Create(ctx, api.CreateDataRepositoryAssociationRequest{FileSystemId: m.fsID, FileSystemPath: "/a", DataRepositoryPath: "s3://" + bucket + "/a", BatchImportMetaDataOnCreate: &yes})
	if err != nil {
		t.Fatal(err)
	}
	<-p.started
	if _, err := m.Delete(ctx, api.DeleteDataRepositoryAssociationRequest{AssociationId: r.Association.AssociationId}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch import went on after the delete")
	}
	testutil.Eventually(t, 10*time.Second, "deleted", func() bool {
		_, err := m.Describe(ctx, api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{r.Association.AssociationId}})
		return api.IsCode(err, api.CodeDataRepositoryAssociationNotFound)
	})
}

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

// recordingImporter keeps the last table it was given; taking a table in
// which an association serves is slow, as a busy listener would be.
type recordingImporter struct {
	mu   sync.Mutex
	last *dra.Table
}

func (p *recordingImporter) SetAssociations(t *dra.Table) {
	for _, a := range t.All() {
		if a.Serves() {
			time.Sleep(300 * time.Millisecond)
			break
		}
	}
	p.mu.Lock()
	p.last = t
	p.mu.Unlock()
}

func (p *recordingImporter) ImportAll(context.Context, api.DataRepositoryAssociation, func(importer.ImportCounts)) (importer.ImportCounts, error) {
	return importer.ImportCounts{}, nil
}

// A describe that shows an association AVAILABLE comes after the importer
// (and the exporter and journal, given the same table) were told: a
// request made on the strength of it (hsm archive) finds it serving.
func TestDescribeAfterPublish(t *testing.T) {
	p := &recordingImporter{}
	m, bucket := newTestAssociations(t, p)
	r, err := m.Create(context.Background(), api.CreateDataRepositoryAssociationRequest{FileSystemId: m.fsID, FileSystemPath: "/a", DataRepositoryPath: "s3://" + bucket + "/a"})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Association.AssociationId
	testutil.Eventually(t, 30*time.Second, "AVAILABLE", func() bool {
		if describeOne(t, m, id).Lifecycle != api.LifecycleAvailable {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		a, ok := p.last.ByID(id)
		if !ok || !a.Serves() {
			t.Fatalf("describe shows %s AVAILABLE before the importer was given it (it has %+v)", id, a)
		}
		return true
	})
}
