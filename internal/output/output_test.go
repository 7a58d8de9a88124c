package output

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func ts(sec int, micro int) api.Time {
	return api.Time{Time: time.Date(2024, 1, 2, 3, 4, sec, micro*1000, time.UTC)}
}

func draResponse() api.DescribeDataRepositoryAssociationsResponse {
	mk := func(id, path, repo string, lc api.DataRepositoryLifecycle, tag string, sec int) api.DataRepositoryAssociation {
		return api.DataRepositoryAssociation{
			AssociationId: id, ResourceARN: api.AssociationARN("fs-0123456789abcdef0", id), FileSystemId: "fs-0123456789abcdef0",
			Lifecycle: lc, FileSystemPath: path, DataRepositoryPath: repo, BatchImportMetaDataOnCreate: true, ImportedFileChunkSize: 1024,
			S3:   &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: []api.EventType{"NEW", "CHANGED", "DELETED"}}},
			Tags: []api.Tag{{Key: "Name", Value: tag}}, CreationTime: ts(sec, 123000),
		}
	}
	a := mk("dra-0a1b2c3d4e5f60718", "/ExtData", "s3://dzhang-imi-gchp-test/ExtData/", api.LifecycleAvailable, "dra-extdata", 5)
	b := mk("dra-1a1b2c3d4e5f60718", "/blended-tropomi", "s3://dzhang-imi-gchp-test/blended-tropomi/", api.LifecycleCreating, "dra-blended-tropomi", 6)
	c := mk("dra-2a1b2c3d4e5f60718", "/blended-boundary-conditions", "s3://dzhang-imi-gchp-test/blended-boundary-conditions/", api.LifecycleMisconfigured, "dra-blended-bc", 7)
	c.FailureDetails = &api.FailureDetails{Message: "bucket dzhang-imi-gchp-test: AccessDenied: grant s3:ListBucket to ferry's credentials"}
	c.S3.AutoExportPolicy = &api.AutoExportPolicy{Events: []api.EventType{"NEW"}}
	return api.DescribeDataRepositoryAssociationsResponse{Associations: []api.DataRepositoryAssociation{a, b, c}}
}

func taskResponse() api.DescribeDataRepositoryTasksResponse {
	start, end, upd := ts(10, 0), ts(40, 500000), ts(40, 500000)
	rc := int64(1073741824)
	return api.DescribeDataRepositoryTasksResponse{DataRepositoryTasks: []api.DataRepositoryTask{
		{
			TaskId: "task-0123456789abcdef0", Lifecycle: api.TaskSucceeded, Type: api.TaskExportToRepository,
			CreationTime: ts(9, 0), StartTime: &start, EndTime: &end, ResourceARN: api.TaskARN("task-0123456789abcdef0"),
			FileSystemId: "fs-0123456789abcdef0", Paths: []string{"ExtData/out", "blended-tropomi"},
			Status: &api.DataRepositoryTaskStatus{TotalCount: 1200, SucceededCount: 1198, FailedCount: 2, LastUpdatedTime: &upd},
			Report: &api.CompletionReport{Enabled: true, Path: "/fsx/reports", Format: api.ReportCSV20191124, Scope: api.ReportFailedFilesOnly},
		},
		{
			TaskId: "task-1123456789abcdef0", Lifecycle: api.TaskExecuting, Type: api.TaskReleaseDataFromFilesystem,
			CreationTime: ts(11, 0), StartTime: &start, FileSystemId: "fs-0123456789abcdef0",
			Status:               &api.DataRepositoryTaskStatus{TotalCount: 10, SucceededCount: 3, FailedCount: 0, LastUpdatedTime: &upd, ReleasedCapacity: &rc},
			Report:               &api.CompletionReport{Enabled: false},
			ReleaseConfiguration: &api.ReleaseConfiguration{DurationSinceLastAccess: &api.DurationSinceLastAccess{Unit: api.UnitDays, Value: 7}},
		},
	}}
}

var cases = []struct {
	name, title string
	v           func() any
	query       string
}{
	{"dra-describe", "DescribeDataRepositoryAssociations", func() any { return draResponse() }, ""},
	{"dra-query", "DescribeDataRepositoryAssociations", func() any { return draResponse() }, "Associations[*].{Path:FileSystemPath,S3:DataRepositoryPath,State:Lifecycle}"},
	{"dra-create", "CreateDataRepositoryAssociation", func() any {
		a := draResponse().Associations[1]
		return api.CreateDataRepositoryAssociationResponse{Association: &a}
	}, ""},
	{"task-describe", "DescribeDataRepositoryTasks", func() any { return taskResponse() }, ""},
	{"task-query", "DescribeDataRepositoryTasks", func() any { return taskResponse() }, "DataRepositoryTasks[].[TaskId, Lifecycle, Status.SucceededCount, length(Paths || `[]`)]"},
	{"ids-query", "DescribeDataRepositoryAssociations", func() any { return draResponse() }, "Associations[].AssociationId"},
	{"scalar-query", "DescribeDataRepositoryAssociations", func() any { return draResponse() }, "Associations[0].ImportedFileChunkSize"},
}

// The golden files were checked against awscli's own formatters (see
// testdata/awsref.py, run with the aws CLI's Python).
func TestGolden(t *testing.T) {
	for _, tc := range cases {
		in, _ := json.MarshalIndent(tc.v(), "", "  ")
		inPath := filepath.Join("testdata", tc.name+".input.json")
		if *update {
			os.WriteFile(inPath, append(in, '\n'), 0o644)
		}
		for _, format := range []string{"json", "text", "table"} {
			var buf bytes.Buffer
			if err := Write(&buf, tc.v(), Options{Output: format, Query: tc.query, Title: tc.title}); err != nil {
				t.Fatalf("%s %s: %v", tc.name, format, err)
			}
			golden := filepath.Join("testdata", tc.name+"."+format+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if buf.String() != string(want) {
				t.Errorf("%s: got\n%s\nwant\n%s", golden, buf.String(), want)
			}
		}
	}
}

func TestQueryErrors(t *testing.T) {
	err := Write(&bytes.Buffer{}, draResponse(), Options{Query: "Associations[*"})
	if err == nil || !strings.Contains(err.Error(), `"Associations[*"`) {
		t.Errorf("bad query error %v", err)
	}
	if err := CheckQuery("Associations[?Lifecycle=='AVAILABLE'].AssociationId"); err != nil {
		t.Error(err)
	}
	err = Write(&bytes.Buffer{}, draResponse(), Options{Query: "length(Associations[0].FileSystemPath, `1`)"})
	if err == nil || !strings.Contains(err.Error(), "--query") {
		t.Errorf("runtime query error %v", err)
	}
	if err := Write(&bytes.Buffer{}, 1, Options{Output: "yaml"}); err == nil || !strings.Contains(err.Error(), "yaml") {
		t.Errorf("bad format error %v", err)
	}
}

func TestJSONDetails(t *testing.T) {
	tests := []struct {
		v     any
		query string
		want  string
	}{
		{map[string]any{}, "", ""},
		{map[string]any{"a": []int{}, "b": map[string]int{}}, "", "{\n    \"a\": [],\n    \"b\": {}\n}\n"},
		{map[string]any{"s": "é<>&\u2028\x01\"\\"}, "", "{\n    \"s\": \"é<>&\u2028\\u0001\\\"\\\\\"\n}\n"},
		{map[string]any{"a": 1}, "missing", "null\n"},
		{map[string]any{"a": 1.5, "b": 2}, "[a, b, `0.25`]", "[\n    1.5,\n    2,\n    0.25\n]\n"},
		{map[string]any{"z": 1, "a": 2}, "{z: z, \"a b\": a}", "{\n    \"z\": 1,\n    \"a b\": 2\n}\n"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		if err := Write(&buf, tc.v, Options{Query: tc.query}); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tc.want {
			t.Errorf("%v %q: got %q want %q", tc.v, tc.query, buf.String(), tc.want)
		}
	}
}

func TestTextDetails(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{map[string]any{"b": true, "a": nil, "c": "x"}, "None\tTrue\tx\n"},
		{[]any{"a", "b"}, "a\tb\n"},
		{map[string]any{"L": []any{"a", "b"}}, "L\ta\nL\tb\n"},
		{map[string]any{"L": []any{map[string]any{"a": 1}, map[string]any{"b": 2}}}, "L\t1\t\nL\t\t2\n"},
		{[]any{[]any{"a", 1}, []any{"b", 2}}, "a\t1\nb\t2\n"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		if err := Write(&buf, tc.v, Options{Output: "text"}); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tc.want {
			t.Errorf("%v: got %q want %q", tc.v, buf.String(), tc.want)
		}
	}
}

func TestTableNarrowTerminal(t *testing.T) {
	var buf bytes.Buffer
	a := draResponse().Associations[0]
	if err := Write(&buf, api.CreateDataRepositoryAssociationResponse{Association: &a}, Options{Output: "table", Title: "CreateDataRepositoryAssociation", Width: 40}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "||  AssociationId  ") {
		t.Errorf("narrow table not vertical:\n%s", buf.String())
	}
}
