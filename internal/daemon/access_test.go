package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// One mount links a public input bucket unsigned, a private output bucket
// with the daemon's credentials, and a requester-pays prefix, side by
// side. A recording proxy in front of MinIO shows that every request to
// the public bucket went unsigned (no Authorization) — its repository
// check, batch import, listing and reads — every request to the private
// bucket signed, and every request of the requester-pays association,
// export included, with x-amz-request-payer: requester. What an unsigned
// association cannot do is refused with the fix: an export policy at
// create and update, an export task naming its path, hsm archive of its
// files.
func TestPublicBesidePrivateAssociations(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	proxy := testutil.NewRequestLog(t, srv.Endpoint)
	pub, priv := srv.Bucket(t), srv.Bucket(t)
	srv.PublicRead(t, pub)
	srv.Put(t, pub, "ExtData/HEMCO/a.nc", []byte("emissions"))
	srv.Put(t, pub, "ExtData/CHEM_INPUTS/b.nc", []byte("chemistry"))
	srv.Put(t, priv, "payer/in.nc", []byte("paid"))
	e := startExportEnv(t, func(c *Config) { c.S3.EndpointURL = proxy.URL })

	yes := true
	in, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/ExtData", DataRepositoryPath: "s3://" + pub + "/ExtData",
		BatchImportMetaDataOnCreate: &yes, FerryRepositoryAccess: &api.RepositoryAccess{Unsigned: true},
		S3: &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: []api.EventType{api.EventNew}}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/output", DataRepositoryPath: "s3://" + priv + "/output", S3: exportAll})
	if err != nil {
		t.Fatal(err)
	}
	paid, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/payer", DataRepositoryPath: "s3://" + priv + "/payer", S3: exportAll,
		FerryRepositoryAccess: &api.RepositoryAccess{RequestPayer: "requester"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{in.AssociationId, out.AssociationId, paid.AssociationId} {
		e.waitState(id, api.LifecycleAvailable)
	}
	if a := e.describe(in.AssociationId); a.FerryRepositoryAccess == nil || !a.FerryRepositoryAccess.Unsigned || a.FerryRepositoryAccess.RequestPayer != "" {
		t.Errorf("describe of the public association: FerryRepositoryAccess %+v", a.FerryRepositoryAccess)
	}
	if a := e.describe(out.AssociationId); a.FerryRepositoryAccess != nil {
		t.Errorf("describe of the private association: FerryRepositoryAccess %+v", a.FerryRepositoryAccess)
	}
	if a := e.describe(paid.AssociationId); a.FerryRepositoryAccess == nil || a.FerryRepositoryAccess.RequestPayer != "requester" {
		t.Errorf("describe of the requester-pays association: FerryRepositoryAccess %+v", a.FerryRepositoryAccess)
	}

	// Read the public data, write output, read the paid object.
	for rel, want := range map[string]string{"ExtData/HEMCO/a.nc": "emissions", "ExtData/CHEM_INPUTS/b.nc": "chemistry", "payer/in.nc": "paid"} {
		got, err := os.ReadFile(filepath.Join(e.mp, rel))
		if err != nil || string(got) != want {
			t.Errorf("read %s through the mount: %q %v", rel, got, err)
		}
	}
	for _, rel := range []string{"output/result.nc", "payer/result.nc"} {
		if err := os.WriteFile(filepath.Join(e.mp, rel), []byte("result"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.c.Wait(context.Background(), api.HSMRequest{Paths: []string{filepath.Join(e.mp, "output"), filepath.Join(e.mp, "payer")}, Timeout: 30}, func(api.WaitEvent) {}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"output/result.nc", "payer/result.nc"} {
		if got, ok := getObject(t, srv.Client(t), priv, key); !ok || got != "result" {
			t.Errorf("exported %s: %q %v", key, got, ok)
		}
	}

	// An import task over the public prefix lists it unsigned too.
	srv.Put(t, pub, "ExtData/HEMCO/new.nc", []byte("new"))
	var itr api.CreateDataRepositoryTaskResponse
	if err := e.c.Call(context.Background(), api.OpCreateTask, api.CreateDataRepositoryTaskRequest{FileSystemId: e.d.ID(), Type: api.TaskImportMetadataFromRepository,
		Paths: []string{"s3://" + pub + "/ExtData/HEMCO/"}, Report: &api.CompletionReport{Enabled: false}}, &itr); err != nil {
		t.Fatal(err)
	}
	if task := e.waitTask(itr.DataRepositoryTask.TaskId); task.Lifecycle != api.TaskSucceeded {
		t.Errorf("import task of the public prefix: %s %+v %+v", task.Lifecycle, task.Status, task.FailureDetails)
	}
	if got, err := os.ReadFile(filepath.Join(e.mp, "ExtData/HEMCO/new.nc")); err != nil || string(got) != "new" {
		t.Errorf("imported new.nc: %q %v", got, err)
	}

	var pubN, privN int
	for _, r := range proxy.Records() {
		auth := r.Header.Get("Authorization")
		payer := r.Header.Get("X-Amz-Request-Payer")
		switch {
		case strings.HasPrefix(r.Path, "/"+pub):
			pubN++
			if auth != "" || r.Header.Get("X-Amz-Security-Token") != "" || strings.Contains(r.RawQuery, "X-Amz-Signature") {
				t.Errorf("request to the public bucket was signed: %s %s?%s (%s)", r.Method, r.Path, r.RawQuery, auth)
			}
		case strings.HasPrefix(r.Path, "/"+priv):
			privN++
			if auth == "" {
				t.Errorf("request to the private bucket unsigned: %s %s?%s", r.Method, r.Path, r.RawQuery)
			}
			payerReq := strings.HasPrefix(r.Path, "/"+priv+"/payer") || strings.Contains(r.RawQuery, "prefix=payer")
			if payerReq && payer != "requester" {
				t.Errorf("request of the requester-pays association without x-amz-request-payer: %s %s?%s", r.Method, r.Path, r.RawQuery)
			}
			if strings.HasPrefix(r.Path, "/"+priv+"/output") && payer != "" {
				t.Errorf("request of the private association with x-amz-request-payer: %s %s", r.Method, r.Path)
			}
		}
	}
	if pubN < 3 || privN < 3 {
		t.Fatalf("the proxy saw %d requests to the public and %d to the private bucket; the test is not measuring", pubN, privN)
	}

	// Refusals, each naming the fix.
	_, err = e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/pubout", DataRepositoryPath: "s3://" + pub + "/out",
		FerryRepositoryAccess: &api.RepositoryAccess{Unsigned: true}, S3: exportAll})
	if !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "cannot export") || !strings.Contains(err.Error(), "drop the AutoExportPolicy") {
		t.Errorf("create unsigned with an export policy: %v", err)
	}
	var ur api.UpdateDataRepositoryAssociationResponse
	err = e.c.Call(context.Background(), api.OpUpdateAssociation, api.UpdateDataRepositoryAssociationRequest{AssociationId: in.AssociationId, S3: exportAll}, &ur)
	if !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "update of "+in.AssociationId) || !strings.Contains(err.Error(), "cannot export") {
		t.Errorf("update of the unsigned association with an export policy: %v", err)
	}
	for _, bad := range []api.RepositoryAccess{{Unsigned: true, RequestPayer: "requester"}, {RequestPayer: "owner"}} {
		_, err = e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/bad", DataRepositoryPath: "s3://" + pub + "/bad", FerryRepositoryAccess: &bad})
		if !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "FerryRepositoryAccess") {
			t.Errorf("create with FerryRepositoryAccess %+v: %v", bad, err)
		}
	}
	var tr api.CreateDataRepositoryTaskResponse
	err = e.c.Call(context.Background(), api.OpCreateTask, api.CreateDataRepositoryTaskRequest{FileSystemId: e.d.ID(), Type: api.TaskExportToRepository,
		Paths: []string{"ExtData/HEMCO"}, Report: &api.CompletionReport{Enabled: false}}, &tr)
	if !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), in.AssociationId) || !strings.Contains(err.Error(), "--no-sign-request") {
		t.Errorf("export task in the unsigned association: %v", err)
	}
	local := filepath.Join(e.mp, "ExtData/HEMCO/local.nc")
	if err := os.WriteFile(local, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := e.c.HSM(context.Background(), api.HSMArchive, api.HSMRequest{Paths: []string{local}})
	if err != nil {
		t.Fatal(err)
	}
	if f := resp.Files[0]; !strings.Contains(f.Error, "--no-sign-request") {
		t.Errorf("hsm archive in the unsigned association: %+v", f)
	}
	// An export task over the whole file system passes over it.
	if err := e.c.Call(context.Background(), api.OpCreateTask, api.CreateDataRepositoryTaskRequest{FileSystemId: e.d.ID(), Type: api.TaskExportToRepository,
		Report: &api.CompletionReport{Enabled: false}}, &tr); err != nil {
		t.Fatal(err)
	}
	if task := e.waitTask(tr.DataRepositoryTask.TaskId); task.Lifecycle != api.TaskSucceeded || task.Status == nil || task.Status.FailedCount != 0 {
		t.Errorf("whole file system export task: %s %+v %+v", task.Lifecycle, task.Status, task.FailureDetails)
	}
	if _, ok := getObject(t, srv.Client(t), pub, "ExtData/HEMCO/local.nc"); ok {
		t.Errorf("a file of the unsigned association was exported")
	}
}

// waitTask waits until task id has ended and returns it.
func (e *env) waitTask(id string) api.DataRepositoryTask {
	e.t.Helper()
	var task api.DataRepositoryTask
	testutil.Eventually(e.t, 30*time.Second, "task "+id+" ends", func() bool {
		var dr api.DescribeDataRepositoryTasksResponse
		if err := e.c.Call(context.Background(), api.OpDescribeTasks, api.DescribeDataRepositoryTasksRequest{TaskIds: []string{id}}, &dr); err != nil {
			e.t.Fatal(err)
		}
		task = dr.DataRepositoryTasks[0]
		return task.Lifecycle == api.TaskSucceeded || task.Lifecycle == api.TaskFailed || task.Lifecycle == api.TaskCanceled
	})
	return task
}
