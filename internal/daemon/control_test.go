package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// env is a daemon mounted in-process against the shared MinIO.
type env struct {
	t          *testing.T
	srv        *testutil.MinIO
	rt, st, mp string
	d          *Daemon
	c          *api.Client
}

func startEnv(t *testing.T) *env {
	t.Helper()
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	srv.Client(t) // sets the credentials in the environment
	e := &env{t: t, srv: srv, rt: t.TempDir(), st: t.TempDir(), mp: t.TempDir()}
	testutil.DetachOnCleanup(t, e.mp)
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	e.startWith(400 * time.Millisecond)
}

func (e *env) startWith(recheck time.Duration) {
	e.t.Helper()
	d, err := Start(Config{Store: e.st, MountPoint: e.mp, RuntimeDir: e.rt,
		S3:              s3x.Config{EndpointURL: e.srv.Endpoint, MaxAttempts: 2},
		RecheckInterval: recheck})
	if err != nil {
		e.t.Fatal(err)
	}
	e.d = d
	e.c = api.NewClient(mounts.SocketPath(e.rt, d.ID()))
	e.t.Cleanup(func() { e.c.Close(); d.Stop() })
}

func (e *env) create(req api.CreateDataRepositoryAssociationRequest) (api.DataRepositoryAssociation, error) {
	req.FileSystemId = e.d.ID()
	var resp api.CreateDataRepositoryAssociationResponse
	err := e.c.Call(context.Background(), api.OpCreateAssociation, req, &resp)
	if err != nil {
		return api.DataRepositoryAssociation{}, err
	}
	return *resp.Association, nil
}

func (e *env) describe(id string) api.DataRepositoryAssociation {
	e.t.Helper()
	var resp api.DescribeDataRepositoryAssociationsResponse
	if err := e.c.Call(context.Background(), api.OpDescribeAssociations, api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{id}}, &resp); err != nil {
		e.t.Fatal(err)
	}
	return resp.Associations[0]
}

func (e *env) waitState(id string, want api.DataRepositoryLifecycle) api.DataRepositoryAssociation {
	e.t.Helper()
	var a api.DataRepositoryAssociation
	testutil.Eventually(e.t, 20*time.Second, string(want), func() bool {
		a = e.describe(id)
		return a.Lifecycle == want
	})
	return a
}

func TestControlSocketAndRegistration(t *testing.T) {
	e := startEnv(t)
	sock := mounts.SocketPath(e.rt, e.d.ID())
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	regs, _ := mounts.List(e.rt)
	if len(regs) != 1 || regs[0].Socket != sock {
		t.Fatalf("registration %+v", regs)
	}
	var fsr api.DescribeFileSystemsResponse
	if err := e.c.Call(context.Background(), api.OpDescribeFileSystems, api.DescribeFileSystemsRequest{}, &fsr); err != nil {
		t.Fatal(err)
	}
	if len(fsr.FileSystems) != 1 || fsr.FileSystems[0].FileSystemId != e.d.ID() || fsr.FileSystems[0].FerryConfiguration.MountPoint != e.mp {
		t.Fatalf("describe-file-systems %+v", fsr)
	}
	// Typed errors.
	err = e.c.Call(context.Background(), "NoSuchOperation", struct{}{}, &struct{}{})
	if !api.IsCode(err, api.CodeBadRequest) {
		t.Errorf("unknown operation: %v", err)
	}
	err = e.c.Call(context.Background(), api.OpCreateAssociation, map[string]any{"FileSystemID": "x"}, &struct{}{})
	if !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "FileSystemID") {
		t.Errorf("misspelt member: %v", err)
	}
	var cr api.CreateDataRepositoryAssociationResponse
	err = e.c.Call(context.Background(), api.OpCreateAssociation, api.CreateDataRepositoryAssociationRequest{FileSystemId: "fs-0123456789abcdef0", FileSystemPath: "/z", DataRepositoryPath: "s3://bbb/z"}, &cr)
	if !api.IsCode(err, api.CodeFileSystemNotFound) {
		t.Errorf("other file system: %v", err)
	}
	m, err := e.c.Metrics(context.Background())
	if err != nil || !strings.Contains(m, "ferry_fuse_opens_total") || !strings.Contains(m, "ferry_importer_get_requests_total") || !strings.Contains(m, `ferry_associations{lifecycle=`) {
		t.Errorf("metrics: %v\n%.500s", err, m)
	}
	e.d.Stop()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after stop: %v", err)
	}
}

// A repository that cannot be used makes the association MISCONFIGURED
// with a message naming the bucket; it becomes AVAILABLE by itself once
// the cause is gone.
func TestMisconfiguredRecovers(t *testing.T) {
	e := startEnv(t)
	bucket := "ferry-missing-" + strings.ToLower(e.d.ID()[3:])
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Lifecycle != api.LifecycleCreating {
		t.Errorf("create answered %s", a.Lifecycle)
	}
	a = e.waitState(a.AssociationId, api.LifecycleMisconfigured)
	if a.FailureDetails == nil || !strings.Contains(a.FailureDetails.Message, bucket) || !strings.Contains(a.FailureDetails.Message, "does not exist") {
		t.Fatalf("FailureDetails %+v", a.FailureDetails)
	}
	if fi, err := os.Stat(filepath.Join(e.st, "data")); err != nil || !fi.IsDir() {
		t.Fatalf("association directory: %v", err)
	}
	c := e.srv.Client(t)
	if _, err := c.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	a = e.waitState(a.AssociationId, api.LifecycleAvailable)
	if a.FailureDetails != nil {
		t.Errorf("FailureDetails kept: %+v", a.FailureDetails)
	}
}

// An update re-checks a MISCONFIGURED association at once, without waiting
// for the periodic re-check.
func TestUpdateRechecksAtOnce(t *testing.T) {
	e := startEnv(t)
	e.d.Stop()
	e.startWith(time.Hour)
	bucket := "ferry-later-" + strings.ToLower(e.d.ID()[3:])
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/later", DataRepositoryPath: "s3://" + bucket + "/"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleMisconfigured)
	if _, err := e.srv.Client(t).S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	var ur api.UpdateDataRepositoryAssociationResponse
	if err := e.c.Call(context.Background(), api.OpUpdateAssociation, api.UpdateDataRepositoryAssociationRequest{AssociationId: a.AssociationId, S3: &api.S3DataRepositoryConfiguration{}}, &ur); err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
}

// With an export policy the check writes (and deletes) a probe object;
// bad credentials are named as such. An update re-checks at once.
func TestRepositoryCheckWriteAndUpdate(t *testing.T) {
	e := startEnv(t)
	bucket := e.srv.Bucket(t)
	e.srv.Put(t, bucket, "p/x", []byte("hello"))
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/w", DataRepositoryPath: "s3://" + bucket + "/p",
		S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew, api.EventDeleted}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	var keys []string
	e.srv.Client(t).List(context.Background(), bucket, s3x.ListOptions{}, func(o s3x.Object) error { keys = append(keys, o.Key); return nil })
	if len(keys) != 1 || keys[0] != "p/x" {
		t.Errorf("probe left behind: %v", keys)
	}
	chunk := int32(64)
	var ur api.UpdateDataRepositoryAssociationResponse
	if err := e.c.Call(context.Background(), api.OpUpdateAssociation, api.UpdateDataRepositoryAssociationRequest{AssociationId: a.AssociationId, ImportedFileChunkSize: &chunk}, &ur); err != nil {
		t.Fatal(err)
	}
	if ur.Association.Lifecycle != api.LifecycleUpdating || ur.Association.ImportedFileChunkSize != 64 {
		t.Errorf("update answered %+v", ur.Association)
	}
	a = e.waitState(a.AssociationId, api.LifecycleAvailable)
	if a.ImportedFileChunkSize != 64 || a.S3 == nil || a.S3.AutoExportPolicy == nil {
		t.Errorf("after update: %+v", a)
	}
	// Delete without data: the directory stays; the association goes.
	var dr api.DeleteDataRepositoryAssociationResponse
	if err := e.c.Call(context.Background(), api.OpDeleteAssociation, api.DeleteDataRepositoryAssociationRequest{AssociationId: a.AssociationId}, &dr); err != nil {
		t.Fatal(err)
	}
	if dr.Lifecycle != api.LifecycleDeleting || dr.DeleteDataInFileSystem {
		t.Errorf("delete answered %+v", dr)
	}
	testutil.Eventually(t, 20*time.Second, "association gone", func() bool {
		var resp api.DescribeDataRepositoryAssociationsResponse
		err := e.c.Call(context.Background(), api.OpDescribeAssociations, api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{a.AssociationId}}, &resp)
		return api.IsCode(err, api.CodeDataRepositoryAssociationNotFound)
	})
	if _, err := os.Stat(filepath.Join(e.st, "w")); err != nil {
		t.Errorf("directory removed by a delete without DeleteDataInFileSystem: %v", err)
	}
}

func TestDeleteDataInFileSystem(t *testing.T) {
	e := startEnv(t)
	bucket := e.srv.Bucket(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/gone/d", DataRepositoryPath: "s3://" + bucket + "/"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	os.MkdirAll(filepath.Join(e.mp, "gone/d/sub"), 0o755)
	os.WriteFile(filepath.Join(e.mp, "gone/d/sub/f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(e.mp, "gone/keep"), []byte("x"), 0o644)
	yes := true
	var dr api.DeleteDataRepositoryAssociationResponse
	if err := e.c.Call(context.Background(), api.OpDeleteAssociation, api.DeleteDataRepositoryAssociationRequest{AssociationId: a.AssociationId, DeleteDataInFileSystem: &yes, ClientRequestToken: "del-1"}, &dr); err != nil {
		t.Fatal(err)
	}
	if !dr.DeleteDataInFileSystem {
		t.Errorf("delete answered %+v", dr)
	}
	testutil.Eventually(t, 20*time.Second, "files removed", func() bool {
		_, err := os.Stat(filepath.Join(e.st, "gone/d"))
		return errors.Is(err, os.ErrNotExist)
	})
	if _, err := os.Stat(filepath.Join(e.st, "gone/keep")); err != nil {
		t.Errorf("a file outside the association went: %v", err)
	}
	// The same token with the same request replays; with another, it is refused.
	if err := e.c.Call(context.Background(), api.OpDeleteAssociation, api.DeleteDataRepositoryAssociationRequest{AssociationId: a.AssociationId, DeleteDataInFileSystem: &yes, ClientRequestToken: "del-1"}, &dr); err != nil {
		t.Errorf("replayed delete: %v", err)
	}
	no := false
	err = e.c.Call(context.Background(), api.OpDeleteAssociation, api.DeleteDataRepositoryAssociationRequest{AssociationId: a.AssociationId, DeleteDataInFileSystem: &no, ClientRequestToken: "del-1"}, &dr)
	if !api.IsCode(err, api.CodeIncompatibleParameterError) {
		t.Errorf("delete with a reused token: %v", err)
	}
}

// Work left CREATING or DELETING when the daemon died is finished by the
// next mount: the catalog, not the process, holds it.
func TestRecoveryResumesWork(t *testing.T) {
	e := startEnv(t)
	bucket := e.srv.Bucket(t)
	id := e.d.ID()
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cat, err := catalog.Open(ctx, "", catalog.Options{StoreRoot: e.st})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(aid, path string, l api.DataRepositoryLifecycle) {
		a := api.DataRepositoryAssociation{AssociationId: aid, FileSystemId: id, Lifecycle: l, FileSystemPath: path,
			DataRepositoryPath: "s3://" + bucket + path + "/", ImportedFileChunkSize: 1024, CreationTime: api.Now()}
		if l == api.LifecycleDeleting {
			yes := true
			a.FerryStatus = &api.AssociationStatus{DeleteDataInFileSystem: &yes}
		}
		if _, _, err := cat.CreateAssociation(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
	}
	mk("dra-00000000000000001", "/c", api.LifecycleCreating)
	mk("dra-00000000000000002", "/d", api.LifecycleDeleting)
	os.MkdirAll(filepath.Join(e.st, "d/x"), 0o755)
	cat.Close()
	e.start()
	e.waitState("dra-00000000000000001", api.LifecycleAvailable)
	testutil.Eventually(t, 20*time.Second, "deleting association gone", func() bool {
		var resp api.DescribeDataRepositoryAssociationsResponse
		err := e.c.Call(ctx, api.OpDescribeAssociations, api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{"dra-00000000000000002"}}, &resp)
		return api.IsCode(err, api.CodeDataRepositoryAssociationNotFound)
	})
	if _, err := os.Stat(filepath.Join(e.st, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files of the deleted association: %v", err)
	}
}

// A file where the association's directory should be: FAILED, with the
// path and the fix; a FAILED or MISCONFIGURED association can be deleted.
func TestFailedAndDeleteMisconfigured(t *testing.T) {
	e := startEnv(t)
	if err := os.WriteFile(filepath.Join(e.st, "taken"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	bucket := e.srv.Bucket(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/taken", DataRepositoryPath: "s3://" + bucket + "/t"})
	if err != nil {
		t.Fatal(err)
	}
	a = e.waitState(a.AssociationId, api.LifecycleFailed)
	if a.FailureDetails == nil || !strings.Contains(a.FailureDetails.Message, "/taken") {
		t.Errorf("FailureDetails %+v", a.FailureDetails)
	}
	m, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/m", DataRepositoryPath: "s3://ferry-nonexistent-bucket-x/m"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(m.AssociationId, api.LifecycleMisconfigured)
	for _, id := range []string{a.AssociationId, m.AssociationId} {
		var dr api.DeleteDataRepositoryAssociationResponse
		if err := e.c.Call(context.Background(), api.OpDeleteAssociation, api.DeleteDataRepositoryAssociationRequest{AssociationId: id}, &dr); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, id+" gone", func() bool {
			var resp api.DescribeDataRepositoryAssociationsResponse
			err := e.c.Call(context.Background(), api.OpDescribeAssociations, api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{id}}, &resp)
			return api.IsCode(err, api.CodeDataRepositoryAssociationNotFound)
		})
	}
	if b, err := os.ReadFile(filepath.Join(e.st, "taken")); err != nil || string(b) != "x" {
		t.Errorf("the file in the way was touched: %q %v", b, err)
	}
}
