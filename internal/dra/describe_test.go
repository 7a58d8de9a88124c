package dra

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
)

func manyAssociations(n int) []api.DataRepositoryAssociation {
	var out []api.DataRepositoryAssociation
	for i := range n {
		a := assoc(fmt.Sprintf("dra-%08x", 1000-i), fmt.Sprintf("/d%d", i), fmt.Sprintf("s3://bkt/p%d/", i))
		if i%2 == 1 {
			a.FileSystemId = "fs-99999999"
		}
		a.CreationTime = api.NewTime(time.Unix(int64(1000+i/3), 0)) // ties broken by id
		out = append(out, a)
	}
	return out
}

func TestDescribeAssociationsPaging(t *testing.T) {
	all := manyAssociations(60)
	for _, max := range []int32{1, 7, 25} {
		var got []string
		req := api.DescribeDataRepositoryAssociationsRequest{MaxResults: &max}
		for pages := 0; ; pages++ {
			resp, err := DescribeAssociations(all, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Associations) > int(max) {
				t.Fatalf("page of %d > %d", len(resp.Associations), max)
			}
			for _, a := range resp.Associations {
				got = append(got, a.AssociationId)
			}
			if resp.NextToken == "" {
				break
			}
			if _, err := base64.StdEncoding.DecodeString(resp.NextToken); err != nil || len(resp.NextToken) > 255 {
				t.Fatalf("token %q not FSx-shaped", resp.NextToken)
			}
			req.NextToken = resp.NextToken
		}
		if len(got) != 60 {
			t.Fatalf("max %d: got %d items", max, len(got))
		}
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			seen[id] = true
		}
	}
	resp, _ := DescribeAssociations(all, api.DescribeDataRepositoryAssociationsRequest{})
	if len(resp.Associations) != 25 || resp.NextToken == "" {
		t.Errorf("default page %d", len(resp.Associations))
	}
}

func TestDescribeAssociationsFilters(t *testing.T) {
	all := manyAssociations(10)
	F := func(name string, v ...string) api.Filter { return api.Filter{Name: name, Values: v} }
	tests := []struct {
		req  api.DescribeDataRepositoryAssociationsRequest
		n    int
		code api.ErrorCode
		want string
	}{
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("file-system-id", fsID)}}, 5, "", ""},
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("file-system-id", fsID, "fs-99999999")}}, 10, "", ""},
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("file-system-id", fsID), F("data-repository-type", "S3")}}, 5, "", ""},
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("file-system-id", fsID), F("data-repository-type", "NFS")}}, 0, "", ""},
		{api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{all[0].AssociationId, all[3].AssociationId}}, 2, "", ""},
		{api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{all[1].AssociationId}, Filters: []api.Filter{F("file-system-id", fsID)}}, 0, "", ""},
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("volume-id", "x")}}, 0, api.CodeBadRequest, `filter name "volume-id" is not supported`},
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("file-system-id")}}, 0, api.CodeBadRequest, "has 0 values"},
		{api.DescribeDataRepositoryAssociationsRequest{Filters: []api.Filter{F("file-system-id", fsID), F("file-system-id", fsID)}}, 0, api.CodeBadRequest, "given twice"},
		{api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{"dra-deadbeef"}}, 0, api.CodeDataRepositoryAssociationNotFound, "dra-deadbeef"},
		{api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{"x"}}, 0, api.CodeBadRequest, "not an association id"},
		{api.DescribeDataRepositoryAssociationsRequest{AssociationIds: make([]string, 51)}, 0, api.CodeBadRequest, "maximum is 50"},
		{api.DescribeDataRepositoryAssociationsRequest{MaxResults: i32(26)}, 0, api.CodeBadRequest, "1 to 25"},
		{api.DescribeDataRepositoryAssociationsRequest{MaxResults: i32(0)}, 0, api.CodeBadRequest, "1 to 25"},
		{api.DescribeDataRepositoryAssociationsRequest{NextToken: "garbage!"}, 0, api.CodeBadRequest, "NextToken"},
		{api.DescribeDataRepositoryAssociationsRequest{NextToken: base64.StdEncoding.EncodeToString([]byte("1.000000000000.5.dra-1"))}, 0, api.CodeBadRequest, "NextToken"},
	}
	for i, tc := range tests {
		resp, err := DescribeAssociations(all, tc.req)
		if tc.code != "" {
			t.Run(fmt.Sprint(i), func(t *testing.T) { wantCode(t, err, tc.code, tc.want) })
			continue
		}
		if err != nil || len(resp.Associations) != tc.n || resp.Associations == nil {
			t.Errorf("case %d: %d items, %v; want %d", i, len(resp.Associations), err, tc.n)
		}
	}
	// A token is bound to its query.
	one := int32(1)
	resp, _ := DescribeAssociations(all, api.DescribeDataRepositoryAssociationsRequest{MaxResults: &one, Filters: []api.Filter{F("file-system-id", fsID)}})
	_, err := DescribeAssociations(all, api.DescribeDataRepositoryAssociationsRequest{NextToken: resp.NextToken})
	wantCode(t, err, api.CodeBadRequest, "NextToken")
}

func TestDescribeTasks(t *testing.T) {
	var all []api.DataRepositoryTask
	for i := range 30 {
		all = append(all, api.DataRepositoryTask{TaskId: fmt.Sprintf("task-%017x", i), FileSystemId: fsID,
			Lifecycle: []api.DataRepositoryTaskLifecycle{api.TaskPending, api.TaskSucceeded}[i%2], CreationTime: api.NewTime(time.Unix(int64(i), 0))})
	}
	of := func(t api.DataRepositoryTask) []string { return []string{"dra-0000000" + t.TaskId[len(t.TaskId)-1:]} }
	resp, err := DescribeTasks(all, api.DescribeDataRepositoryTasksRequest{Filters: []api.Filter{{Name: "task-lifecycle", Values: []string{"PENDING"}}}}, of)
	if err != nil || len(resp.DataRepositoryTasks) != 15 {
		t.Fatalf("%d %v", len(resp.DataRepositoryTasks), err)
	}
	resp, _ = DescribeTasks(all, api.DescribeDataRepositoryTasksRequest{Filters: []api.Filter{{Name: "data-repository-association-id", Values: []string{"dra-00000001"}}}}, of)
	if len(resp.DataRepositoryTasks) != 2 { // task ...01 and ...11
		t.Errorf("by association: %d", len(resp.DataRepositoryTasks))
	}
	_, err = DescribeTasks(all, api.DescribeDataRepositoryTasksRequest{Filters: []api.Filter{{Name: "task-lifecycle", Values: []string{"DONE"}}}}, of)
	wantCode(t, err, api.CodeBadRequest, "not a task state")
	_, err = DescribeTasks(all, api.DescribeDataRepositoryTasksRequest{TaskIds: []string{"task-0123456789abcdef0"}}, of)
	wantCode(t, err, api.CodeDataRepositoryTaskNotFound, "task-0123456789abcdef0")
	resp, _ = DescribeTasks(all, api.DescribeDataRepositoryTasksRequest{MaxResults: i32(100000)}, of)
	if len(resp.DataRepositoryTasks) != 30 || resp.NextToken != "" {
		t.Error("large MaxResults")
	}
}

func TestNormalizeCreateTask(t *testing.T) {
	base := func() api.CreateDataRepositoryTaskRequest {
		return api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, FileSystemId: fsID,
			Paths: []string{"/ExtData/a/", "b"}, Report: &api.CompletionReport{Enabled: true, Path: "/fsx/reports"}}
	}
	got, err := NormalizeCreateTask(base())
	if err != nil {
		t.Fatal(err)
	}
	if got.Paths[0] != "ExtData/a" || got.Report.Format != api.ReportCSV20191124 || got.Report.Scope != api.ReportFailedFilesOnly {
		t.Errorf("%+v %+v", got, got.Report)
	}
	imp := base()
	imp.Type = api.TaskImportMetadataFromRepository
	imp.Paths = []string{"s3://bkt/x"}
	if got, err := NormalizeCreateTask(imp); err != nil || got.Paths[0] != "s3://bkt/x/" {
		t.Errorf("import: %v %v", got.Paths, err)
	}
	rel := base()
	rel.Type = api.TaskReleaseDataFromFilesystem
	rel.ReleaseConfiguration = &api.ReleaseConfiguration{DurationSinceLastAccess: &api.DurationSinceLastAccess{Value: 0}}
	if got, err := NormalizeCreateTask(rel); err != nil || got.ReleaseConfiguration.DurationSinceLastAccess.Unit != api.UnitDays {
		t.Errorf("release: %v", err)
	}
	c := int64(5)
	bad := []struct {
		mod  func(*api.CreateDataRepositoryTaskRequest)
		want string
	}{
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Type = "" }, "Type is required"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Type = "EXPORT" }, `Type "EXPORT"`},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Report = nil }, "Report is required"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Report.Path = "" }, "Report.Path is required"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Report.Path = "rel" }, "Report.Path"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Report.Format = "CSV" }, "Report.Format"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Report.Scope = "ALL" }, "Report.Scope"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Paths = []string{"a/../../etc"} }, `".." component`},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Paths = make([]string, 101) }, "maximum is 100"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.Type = api.TaskImportMetadataFromRepository }, "not an S3 address"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.ReleaseConfiguration = &api.ReleaseConfiguration{} }, "only to RELEASE_DATA_FROM_FILESYSTEM"},
		{func(r *api.CreateDataRepositoryTaskRequest) { r.CapacityToRelease = &c }, "only to AUTO_RELEASE_DATA"},
		{func(r *api.CreateDataRepositoryTaskRequest) {
			r.Type = api.TaskReleaseDataFromFilesystem
			r.ReleaseConfiguration = &api.ReleaseConfiguration{DurationSinceLastAccess: &api.DurationSinceLastAccess{Unit: "HOURS"}}
		}, "use DAYS"},
	}
	for _, tc := range bad {
		r := base()
		tc.mod(&r)
		_, err := NormalizeCreateTask(r)
		t.Run(tc.want, func(t *testing.T) { wantCode(t, err, api.CodeBadRequest, tc.want) })
	}
}

func TestNormalizeFailureMessage(t *testing.T) {
	long := NormalizeFailureMessage("bad\nline\x00" + string(make([]byte, 300)))
	if len([]rune(long)) != MaxFailureMessageLen {
		t.Errorf("len %d", len([]rune(long)))
	}
	if got := NormalizeFailureMessage("a\nb"); got != "a b" {
		t.Errorf("%q", got)
	}
}
