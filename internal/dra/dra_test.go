package dra

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
)

const fsID = "fs-0123456789abcdef0"

func i32(n int32) *int32 { return &n }
func bp(b bool) *bool    { return &b }

func wantCode(t *testing.T, err error, code api.ErrorCode, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s containing %q", code, contains)
	}
	if !api.IsCode(err, code) || !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %v, want %s containing %q", err, code, contains)
	}
}

func TestNormalizeFileSystemPath(t *testing.T) {
	good := map[string]string{
		"/ExtData": "/ExtData", "/ExtData/": "/ExtData", "//a//b/": "/a/b", "/": "/",
		"/blended-boundary-conditions": "/blended-boundary-conditions", "/a b/ü": "/a b/ü",
		"/" + strings.Repeat("a", 255): "/" + strings.Repeat("a", 255),
	}
	for in, want := range good {
		got, err := NormalizeFileSystemPath(in)
		if err != nil || got != want {
			t.Errorf("NormalizeFileSystemPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                               "is required",
		"ExtData":                        `must start with "/"`,
		"/a/../b":                        `".." component`,
		"/a/./b":                         `"." component`,
		"/a\x00b":                        "U+0000",
		"/a\rb":                          "U+000D",
		"/a\nb":                          "U+000A",
		"/a\u0085b":                      "U+0085",
		"/a\u2028b":                      "U+2028",
		"/a\u2029b":                      "U+2029",
		"/\xff":                          "not valid UTF-8",
		"/" + strings.Repeat("a/", 2100): "characters long",
		"/" + strings.Repeat("a", 256):   "component of 256 bytes",
	}
	for in, want := range bad {
		_, err := NormalizeFileSystemPath(in)
		wantCode(t, err, api.CodeBadRequest, want)
		if !strings.Contains(err.Error(), "FileSystemPath") {
			t.Errorf("error %v does not name the field", err)
		}
	}
}

func TestNormalizeDataRepositoryPath(t *testing.T) {
	good := map[string]string{
		"s3://dzhang-imi-gchp-test/ExtData": "s3://dzhang-imi-gchp-test/ExtData/",
		"s3://bucket/p/":                    "s3://bucket/p/",
		"s3://bucket":                       "s3://bucket/",
		"s3://bucket/":                      "s3://bucket/",
		"s3://bucket/a/b":                   "s3://bucket/a/b/",
		"s3://my.bucket/x y":                "s3://my.bucket/x y/",
	}
	for in, want := range good {
		got, err := NormalizeDataRepositoryPath(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDataRepositoryPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                   "is required",
		"/local/dir":         "not an S3 address",
		"nfs://h/x":          "S3-compatible repositories only",
		"s3://":              "no bucket name",
		"s3://ab/p":          "3 to 63",
		"s3://b!ucket/p":     "character",
		"s3://-bucket/p":     "start and end with a letter or digit",
		"s3://a..b/p":        `no ".."`,
		"s3://bucket/a/../b": `".." component`,
		"s3://bucket/a//b":   "empty component",
		"s3://bucket/a\nb":   "U+000A",
	}
	for in, want := range bad {
		_, err := NormalizeDataRepositoryPath(in)
		wantCode(t, err, api.CodeBadRequest, want)
	}
}

func validCreate() api.CreateDataRepositoryAssociationRequest {
	return api.CreateDataRepositoryAssociationRequest{
		FileSystemId: fsID, FileSystemPath: "/ExtData", DataRepositoryPath: "s3://dzhang-imi-gchp-test/ExtData",
		BatchImportMetaDataOnCreate: bp(true),
		S3:                          &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: []api.EventType{"DELETED", "NEW", "CHANGED"}}},
		Tags:                        []api.Tag{{Key: "Name", Value: "dra-extdata"}},
		ClientRequestToken:          "dra-extdata-001",
	}
}

func TestNormalizeCreate(t *testing.T) {
	got, err := NormalizeCreate(validCreate())
	if err != nil {
		t.Fatal(err)
	}
	if got.DataRepositoryPath != "s3://dzhang-imi-gchp-test/ExtData/" || *got.ImportedFileChunkSize != 1024 || !*got.BatchImportMetaDataOnCreate {
		t.Errorf("normalized %+v", got)
	}
	if ev := got.S3.AutoImportPolicy.Events; len(ev) != 3 || ev[0] != "NEW" || ev[2] != "DELETED" {
		t.Errorf("events %v", ev)
	}
	r := validCreate()
	r.BatchImportMetaDataOnCreate = nil
	r.S3 = &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{}}
	got, _ = NormalizeCreate(r)
	if *got.BatchImportMetaDataOnCreate || got.S3 != nil {
		t.Errorf("defaults: %+v", got)
	}
	a := NewAssociation(got, "dra-0123456789abcdef0", api.NewTime(time.Unix(1, 0)))
	if a.Lifecycle != api.LifecycleCreating || a.ImportedFileChunkSize != 1024 || a.ResourceARN == "" || a.FileSystemPath != "/ExtData" {
		t.Errorf("NewAssociation %+v", a)
	}

	bad := []struct {
		mod  func(*api.CreateDataRepositoryAssociationRequest)
		want string
	}{
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.FileSystemId = "" }, "FileSystemId is required"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.FileSystemId = "fs-XYZ" }, "not a file system id"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.ImportedFileChunkSize = i32(0) }, "ImportedFileChunkSize 0"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.ImportedFileChunkSize = i32(512001) }, "1 to 512000"},
		{func(r *api.CreateDataRepositoryAssociationRequest) {
			r.S3.AutoImportPolicy.Events = []api.EventType{"NEW", "NEW"}
		}, "S3.AutoImportPolicy.Events lists NEW twice"},
		{func(r *api.CreateDataRepositoryAssociationRequest) {
			r.S3.AutoExportPolicy = &api.AutoExportPolicy{Events: []api.EventType{"new"}}
		}, `S3.AutoExportPolicy.Events has the event "new"`},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.Tags = []api.Tag{} }, "Tags is empty"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.Tags = make([]api.Tag, 51) }, "maximum is 50"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.Tags = []api.Tag{{Key: ""}} }, "keys are 1 to 128"},
		{func(r *api.CreateDataRepositoryAssociationRequest) {
			r.Tags = []api.Tag{{Key: strings.Repeat("k", 129)}}
		}, "keys are 1 to 128"},
		{func(r *api.CreateDataRepositoryAssociationRequest) {
			r.Tags = []api.Tag{{Key: "k", Value: strings.Repeat("v", 257)}}
		}, "at most 256"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.Tags = []api.Tag{{Key: "a"}, {Key: "a"}} }, `"a" appears twice`},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.Tags = []api.Tag{{Key: "a;b"}} }, "character tags cannot hold"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.Tags = []api.Tag{{Key: "aws:x"}} }, "reserved"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.ClientRequestToken = strings.Repeat("t", 64) }, "maximum is 63"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.ClientRequestToken = "a b" }, "ClientRequestToken"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.FileSystemPath = "rel" }, "FileSystemPath"},
		{func(r *api.CreateDataRepositoryAssociationRequest) { r.DataRepositoryPath = "b/p" }, "DataRepositoryPath"},
	}
	for i, tc := range bad {
		r := validCreate()
		tc.mod(&r)
		_, err := NormalizeCreate(r)
		t.Run(tc.want, func(t *testing.T) { _ = i; wantCode(t, err, api.CodeBadRequest, tc.want) })
	}
	r = validCreate()
	r.Tags = []api.Tag{{Key: "Name 1", Value: ""}, {Key: "ü_.:/=+-@", Value: "x y"}}
	r.ClientRequestToken = strings.Repeat("A", 63)
	if _, err := NormalizeCreate(r); err != nil {
		t.Errorf("valid tags/token refused: %v", err)
	}
}

func assoc(id, fsPath, repo string) api.DataRepositoryAssociation {
	return api.DataRepositoryAssociation{AssociationId: id, FileSystemId: fsID, FileSystemPath: fsPath, DataRepositoryPath: repo, Lifecycle: api.LifecycleAvailable}
}

func TestCheckCreate(t *testing.T) {
	existing := []api.DataRepositoryAssociation{
		assoc("dra-00000001", "/ns1", "s3://bbb/p/"),
		assoc("dra-00000002", "/data/x", "s3://ccc/"),
		{AssociationId: "dra-00000009", FileSystemId: "fs-99999999", FileSystemPath: "/", DataRepositoryPath: "s3://bbb/"},
	}
	tests := []struct {
		path, repo string
		code       api.ErrorCode
		want       string
	}{
		{"/ns2", "s3://bbb/q/", "", ""},
		{"/ns10", "s3://bbb/p2/", "", ""},  // "/ns1" is not a parent of "/ns10"; "p/" not of "p2/"
		{"/data", "s3://ddd/", "", ""[:0]}, // placeholder replaced below
		{"/ns1/ns2", "s3://zzz/", api.CodeBadRequest, "dra-00000001"},
		{"/ns1", "s3://zzz/", api.CodeBadRequest, "dra-00000001"},
		{"/data/x/y", "s3://zzz/", api.CodeBadRequest, "dra-00000002"},
		{"/new", "s3://bbb/p/sub/", api.CodeBadRequest, `DataRepositoryPath "s3://bbb/p/sub/" overlaps`},
		{"/new", "s3://bbb/", api.CodeBadRequest, "dra-00000001"},
		{"/new", "s3://ccc/any/", api.CodeBadRequest, "dra-00000002"},
		{"/", "s3://zzz/", api.CodeBadRequest, `"/" links the whole file system`},
	}
	tests[2].code, tests[2].want = api.CodeBadRequest, `"/data" overlaps "/data/x"`
	for _, tc := range tests {
		req, err := NormalizeCreate(api.CreateDataRepositoryAssociationRequest{FileSystemId: fsID, FileSystemPath: tc.path, DataRepositoryPath: tc.repo})
		if err != nil {
			t.Fatal(err)
		}
		err = CheckCreate(existing, req)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s %s: %v", tc.path, tc.repo, err)
			}
			continue
		}
		wantCode(t, err, tc.code, tc.want)
	}
	root := []api.DataRepositoryAssociation{assoc("dra-0000000a", "/", "s3://rrr/")}
	req, _ := NormalizeCreate(api.CreateDataRepositoryAssociationRequest{FileSystemId: fsID, FileSystemPath: "/x", DataRepositoryPath: "s3://other/"})
	wantCode(t, CheckCreate(root, req), api.CodeBadRequest, "whole file system")
	if err := CheckCreate(nil, req); err != nil {
		t.Error(err)
	}

	var eight []api.DataRepositoryAssociation
	for i := range 8 {
		eight = append(eight, assoc(NewAssociationID(), "/d"+string(rune('a'+i)), "s3://bk"+string(rune('a'+i))+"/"))
	}
	err := CheckCreate(eight, req)
	wantCode(t, err, api.CodeServiceLimitExceeded, "maximum")
	if api.AsAPIError(err).Limit == "" {
		t.Error("ServiceLimitExceeded without Limit")
	}
	if err := CheckCreate(eight[:7], req); err != nil {
		t.Errorf("7 existing: %v", err)
	}
}

func TestApplyUpdate(t *testing.T) {
	cur := assoc("dra-00000001", "/ns1", "s3://b/p/")
	cur.ImportedFileChunkSize = 1024
	cur.S3 = &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: []api.EventType{"NEW"}}}
	next, err := ApplyUpdate(cur, api.UpdateDataRepositoryAssociationRequest{AssociationId: cur.AssociationId, ImportedFileChunkSize: i32(2048),
		S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{"CHANGED", "NEW"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if next.ImportedFileChunkSize != 2048 || next.S3.AutoImportPolicy != nil || next.S3.AutoExportPolicy.Events[0] != "NEW" || next.FileSystemPath != "/ns1" {
		t.Errorf("updated %+v %+v", next, next.S3)
	}
	if cur.ImportedFileChunkSize != 1024 {
		t.Error("ApplyUpdate changed its input")
	}
	_, err = ApplyUpdate(cur, api.UpdateDataRepositoryAssociationRequest{AssociationId: cur.AssociationId})
	wantCode(t, err, api.CodeBadRequest, "nothing to update")
	_, err = ApplyUpdate(cur, api.UpdateDataRepositoryAssociationRequest{AssociationId: cur.AssociationId, ImportedFileChunkSize: i32(-1)})
	wantCode(t, err, api.CodeBadRequest, "ImportedFileChunkSize")
	cur.Lifecycle = api.LifecycleCreating
	_, err = ApplyUpdate(cur, api.UpdateDataRepositoryAssociationRequest{AssociationId: cur.AssociationId, ImportedFileChunkSize: i32(1)})
	wantCode(t, err, api.CodeBadRequest, "is CREATING")
	_, err = ApplyUpdate(cur, api.UpdateDataRepositoryAssociationRequest{AssociationId: "dra-x"})
	wantCode(t, err, api.CodeBadRequest, "not an association id")
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		for _, id := range []string{NewAssociationID(), NewTaskID(), NewFileSystemID()} {
			if seen[id] {
				t.Fatalf("duplicate id %s", id)
			}
			seen[id] = true
		}
	}
	if err := ValidateAssociationID(NewAssociationID()); err != nil {
		t.Error(err)
	}
	if err := ValidateTaskID(NewTaskID()); err != nil {
		t.Error(err)
	}
	if err := ValidateFileSystemID(NewFileSystemID()); err != nil {
		t.Error(err)
	}
	if id := NewTaskID(); len(id) != len("task-")+17 {
		t.Errorf("task id %s", id)
	}
	for _, bad := range []string{"dra-1234567", "dra-ABCDEF01", "dra-" + strings.Repeat("0", 20), "fs-12345678"} {
		if ValidateAssociationID(bad) == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if ValidateTaskID("task-0123456789abcdef") == nil || ValidateFileSystemID("fs-1234567") == nil {
		t.Error("short ids accepted")
	}
}

func TestTransitions(t *testing.T) {
	L := func(s string) api.DataRepositoryLifecycle { return api.DataRepositoryLifecycle(s) }
	legal := [][2]string{
		{"CREATING", "AVAILABLE"}, {"CREATING", "MISCONFIGURED"}, {"CREATING", "FAILED"}, {"CREATING", "DELETING"},
		{"AVAILABLE", "MISCONFIGURED"}, {"MISCONFIGURED", "AVAILABLE"}, {"AVAILABLE", "UPDATING"}, {"UPDATING", "AVAILABLE"},
		{"MISCONFIGURED", "UPDATING"}, {"UPDATING", "MISCONFIGURED"}, {"AVAILABLE", "DELETING"}, {"MISCONFIGURED", "DELETING"},
		{"FAILED", "DELETING"}, {"AVAILABLE", "AVAILABLE"},
	}
	illegal := [][2]string{
		{"FAILED", "AVAILABLE"}, {"DELETING", "AVAILABLE"}, {"AVAILABLE", "CREATING"}, {"UPDATING", "DELETING"},
		{"CREATING", "UPDATING"}, {"AVAILABLE", "FAILED"}, {"AVAILABLE", "BOGUS"}, {"BOGUS", "BOGUS"},
	}
	for _, m := range legal {
		if err := Transition(L(m[0]), L(m[1])); err != nil {
			t.Errorf("%v refused: %v", m, err)
		}
	}
	for _, m := range illegal {
		var te *TransitionError
		if err := Transition(L(m[0]), L(m[1])); !errors.As(err, &te) {
			t.Errorf("%v allowed", m)
		}
	}
	T := func(s string) api.DataRepositoryTaskLifecycle { return api.DataRepositoryTaskLifecycle(s) }
	for _, m := range [][2]string{{"PENDING", "EXECUTING"}, {"EXECUTING", "SUCCEEDED"}, {"EXECUTING", "FAILED"}, {"PENDING", "CANCELING"}, {"EXECUTING", "CANCELING"}, {"CANCELING", "CANCELED"}} {
		if err := TaskTransition(T(m[0]), T(m[1])); err != nil {
			t.Errorf("%v refused", m)
		}
	}
	for _, m := range [][2]string{{"SUCCEEDED", "EXECUTING"}, {"CANCELED", "PENDING"}, {"PENDING", "SUCCEEDED"}, {"FAILED", "CANCELING"}} {
		if TaskTransition(T(m[0]), T(m[1])) == nil {
			t.Errorf("%v allowed", m)
		}
	}
	if l, err := CancelTask(api.DataRepositoryTask{Lifecycle: api.TaskExecuting}); err != nil || l != api.TaskCanceling {
		t.Error("cancel executing")
	}
	_, err := CancelTask(api.DataRepositoryTask{TaskId: "task-1", Lifecycle: api.TaskSucceeded})
	wantCode(t, err, api.CodeDataRepositoryTaskEnded, "already ended")
	wantCode(t, CanDelete(api.DataRepositoryAssociation{Lifecycle: api.LifecycleUpdating}), api.CodeBadRequest, "UPDATING")
	if CanDelete(api.DataRepositoryAssociation{Lifecycle: api.LifecycleDeleting}) != nil {
		t.Error("repeated delete refused")
	}
}

func TestIdempotency(t *testing.T) {
	ctx := context.Background()
	s := &MemTokenStore{}
	const op = "CreateDataRepositoryAssociation"
	r1, _ := NormalizeCreate(validCreate())
	fp := CreateFingerprint(r1)

	if _, replay, err := CheckToken(ctx, s, op, r1.ClientRequestToken, fp); replay || err != nil {
		t.Fatal("fresh token replayed")
	}
	if id, replay, err := SaveToken(ctx, s, TokenRecord{op, r1.ClientRequestToken, fp, "dra-00000001"}); id != "dra-00000001" || replay || err != nil {
		t.Fatal("save")
	}
	// Same parameters written differently: missing trailing "/", default
	// chunk size spelled out, events and tags in another order.
	same := validCreate()
	same.DataRepositoryPath += "/"
	same.ImportedFileChunkSize = i32(1024)
	same.S3.AutoImportPolicy.Events = []api.EventType{"NEW", "CHANGED", "DELETED"}
	same.Tags = append(same.Tags, api.Tag{Key: "A", Value: "1"})
	r1.Tags = []api.Tag{{Key: "A", Value: "1"}, {Key: "Name", Value: "dra-extdata"}}
	n2, _ := NormalizeCreate(same)
	if CreateFingerprint(n2) != CreateFingerprint(r1) {
		t.Fatal("canonical parameters differ")
	}
	id, replay, err := CheckToken(ctx, s, op, "dra-extdata-001", fp)
	if !replay || id != "dra-00000001" || err != nil {
		t.Fatalf("replay = %v %v %v", id, replay, err)
	}
	other := validCreate()
	other.FileSystemPath = "/Other"
	n3, _ := NormalizeCreate(other)
	_, _, err = CheckToken(ctx, s, op, "dra-extdata-001", CreateFingerprint(n3))
	wantCode(t, err, api.CodeIncompatibleParameterError, "dra-00000001")
	if api.AsAPIError(err).Parameter != "ClientRequestToken" {
		t.Error("Parameter not set")
	}
	// Another operation with the same token is a new request.
	if _, replay, _ := CheckToken(ctx, s, "CreateDataRepositoryTask", "dra-extdata-001", "x"); replay {
		t.Error("token shared across operations")
	}
	// Racing saves: one wins, the identical loser replays its result.
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Go(func() {
			id, _, err := SaveToken(ctx, s, TokenRecord{op, "race", "fp", NewAssociationID()})
			if err != nil {
				t.Error(err)
			}
			results[i] = id
		})
	}
	wg.Wait()
	for _, r := range results {
		if r != results[0] {
			t.Fatalf("racing saves gave %v", results)
		}
	}
	_, _, err = SaveToken(ctx, s, TokenRecord{op, "race", "other", "dra-2"})
	wantCode(t, err, api.CodeIncompatibleParameterError, "race")
	if UpdateFingerprint(api.UpdateDataRepositoryAssociationRequest{AssociationId: "dra-1", S3: &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{}}}) !=
		UpdateFingerprint(api.UpdateDataRepositoryAssociationRequest{AssociationId: "dra-1", ClientRequestToken: "t", S3: &api.S3DataRepositoryConfiguration{}}) {
		t.Error("update fingerprint not canonical")
	}
	if DeleteFingerprint(api.DeleteDataRepositoryAssociationRequest{AssociationId: "dra-1"}) != DeleteFingerprint(api.DeleteDataRepositoryAssociationRequest{AssociationId: "dra-1", DeleteDataInFileSystem: bp(false)}) {
		t.Error("delete default not canonical")
	}
}
