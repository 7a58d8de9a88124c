package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTimeFormat(t *testing.T) {
	utc := time.UTC
	plus2 := time.FixedZone("", 2*3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 123456789, utc), `"2024-01-02T03:04:05.123456+00:00"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 123000000, utc), `"2024-01-02T03:04:05.123000+00:00"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, utc), `"2024-01-02T03:04:05+00:00"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 999, utc), `"2024-01-02T03:04:05+00:00"`}, // below a microsecond
		{time.Date(2024, 1, 2, 3, 4, 5, 500000, plus2), `"2024-01-02T03:04:05.000500+02:00"`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(Time{tc.in})
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.in, b, err, tc.want)
		}
		var back Time
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if !back.Equal(tc.in.Truncate(time.Microsecond)) {
			t.Errorf("round trip of %s = %v", b, back)
		}
		if b2, _ := json.Marshal(back); string(b2) != tc.want {
			t.Errorf("re-marshal = %s, want %s", b2, tc.want)
		}
	}
}

func TestTimeUnmarshalEpoch(t *testing.T) {
	var v Time
	if err := json.Unmarshal([]byte(`1704164645.123`), &v); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2024, 1, 2, 3, 4, 5, 123000000, time.UTC)
	if !v.Equal(want) {
		t.Errorf("got %v want %v", v.UTC(), want)
	}
	for _, bad := range []string{`"yesterday"`, `true`, `"2024-01-02"`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

// The member names and order come from the FSx model; the order is what
// `--output json` prints.
func TestAssociationJSONNames(t *testing.T) {
	ts := Time{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := DataRepositoryAssociation{
		AssociationId: "dra-0123456789abcdef0", ResourceARN: AssociationARN("fs-0123456789abcdef0", "dra-0123456789abcdef0"),
		FileSystemId: "fs-0123456789abcdef0", Lifecycle: LifecycleAvailable,
		FailureDetails: &FailureDetails{Message: "m"}, FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://b/ExtData/", BatchImportMetaDataOnCreate: true, ImportedFileChunkSize: 1024,
		S3:   &S3DataRepositoryConfiguration{AutoImportPolicy: &AutoImportPolicy{Events: []EventType{EventNew}}, AutoExportPolicy: &AutoExportPolicy{Events: []EventType{EventDeleted}}},
		Tags: []Tag{{Key: "Name", Value: "x"}}, CreationTime: ts,
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"AssociationId":"dra-0123456789abcdef0","ResourceARN":"arn:ferry:fsx:local:000000000000:association/fs-0123456789abcdef0/dra-0123456789abcdef0","FileSystemId":"fs-0123456789abcdef0","Lifecycle":"AVAILABLE","FailureDetails":{"Message":"m"},"FileSystemPath":"/ExtData","DataRepositoryPath":"s3://b/ExtData/","BatchImportMetaDataOnCreate":true,"ImportedFileChunkSize":1024,"S3":{"AutoImportPolicy":{"Events":["NEW"]},"AutoExportPolicy":{"Events":["DELETED"]}},"Tags":[{"Key":"Name","Value":"x"}],"CreationTime":"2024-01-02T03:04:05+00:00"}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	var back DataRepositoryAssociation
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if b2, _ := json.Marshal(back); string(b2) != want {
		t.Errorf("round trip differs:\n%s", b2)
	}
}

func TestTaskJSONNames(t *testing.T) {
	ts := Time{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	rc := int64(7)
	task := DataRepositoryTask{
		TaskId: "task-0123456789abcdef0", Lifecycle: TaskSucceeded, Type: TaskReleaseDataFromFilesystem,
		CreationTime: ts, StartTime: &ts, EndTime: &ts, ResourceARN: TaskARN("task-0123456789abcdef0"),
		FileSystemId: "fs-0123456789abcdef0", Paths: []string{"a"},
		Status:               &DataRepositoryTaskStatus{TotalCount: 3, SucceededCount: 2, FailedCount: 1, LastUpdatedTime: &ts, ReleasedCapacity: &rc},
		Report:               &CompletionReport{Enabled: true, Path: "/fsx/reports", Format: ReportCSV20191124, Scope: ReportFailedFilesOnly},
		ReleaseConfiguration: &ReleaseConfiguration{DurationSinceLastAccess: &DurationSinceLastAccess{Unit: UnitDays, Value: 0}},
	}
	b, _ := json.Marshal(task)
	for _, name := range []string{`"TaskId"`, `"Lifecycle"`, `"Type"`, `"CreationTime"`, `"StartTime"`, `"EndTime"`, `"ResourceARN"`, `"FileSystemId"`, `"Paths"`, `"Status":{"TotalCount":3,"SucceededCount":2,"FailedCount":1,"LastUpdatedTime":"2024-01-02T03:04:05+00:00","ReleasedCapacity":7}`, `"Report":{"Enabled":true,"Path":"/fsx/reports","Format":"REPORT_CSV_20191124","Scope":"FAILED_FILES_ONLY"}`, `"ReleaseConfiguration":{"DurationSinceLastAccess":{"Unit":"DAYS","Value":0}}`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("task JSON lacks %s:\n%s", name, b)
		}
	}
}

func TestAPIError(t *testing.T) {
	e := Errorf(CodeBadRequest, "FileSystemPath %q must start with /", "x")
	b, _ := json.Marshal(e)
	if string(b) != `{"__type":"BadRequest","Message":"FileSystemPath \"x\" must start with /"}` {
		t.Errorf("JSON = %s", b)
	}
	if got := e.CLIMessage("CreateDataRepositoryAssociation"); got != `An error occurred (BadRequest) when calling the CreateDataRepositoryAssociation operation: FileSystemPath "x" must start with /` {
		t.Errorf("CLIMessage = %s", got)
	}
	var back APIError
	if err := json.Unmarshal([]byte(`{"__type":"com.amazonaws.fsx#FileSystemNotFound","message":"no fs"}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.Code != CodeFileSystemNotFound || back.Message != "no fs" {
		t.Errorf("decoded %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"Message":"x"}`), &back); err == nil {
		t.Error("body without __type decoded")
	}
	wrapped := fmt.Errorf("create: %w", e)
	if !errors.Is(wrapped, &APIError{Code: CodeBadRequest}) || errors.Is(wrapped, &APIError{Code: CodeInternalServerError}) {
		t.Error("errors.Is by code")
	}
	if !IsCode(wrapped, CodeBadRequest) || AsAPIError(wrapped) != e {
		t.Error("IsCode/AsAPIError")
	}
	if got := AsAPIError(errors.New("disk")); got.Code != CodeInternalServerError || got.Message != "disk" {
		t.Errorf("AsAPIError(plain) = %+v", got)
	}
	statuses := map[ErrorCode]int{
		CodeBadRequest: 400, CodeServiceLimitExceeded: 400, CodeIncompatibleParameterError: 409,
		CodeDataRepositoryTaskExecuting: 409, CodeDataRepositoryTaskEnded: 409, CodeFileSystemNotFound: 404,
		CodeDataRepositoryAssociationNotFound: 404, CodeDataRepositoryTaskNotFound: 404, CodeInternalServerError: http.StatusInternalServerError,
	}
	for c, s := range statuses {
		if got := (&APIError{Code: c}).HTTPStatus(); got != s {
			t.Errorf("%s status %d want %d", c, got, s)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		op, body, want string
	}{
		{"UpdateDataRepositoryAssociation", `{"AssociationId":"dra-12345678","FileSystemPath":"/x"}`, "UpdateDataRepositoryAssociation has no member FileSystemPath: the paths of an association cannot change"},
		{"CreateDataRepositoryAssociation", `{"FileSystemID":"fs-1"}`, "has no member FileSystemID: check the spelling"},
		{"CreateDataRepositoryAssociation", `{"ImportedFileChunkSize":"big"}`, "member ImportedFileChunkSize must be a JSON number"},
		{"CreateDataRepositoryAssociation", ``, "the request body is empty"},
		{"CreateDataRepositoryAssociation", `{} {}`, "data after the JSON object"},
		{"CreateDataRepositoryAssociation", `{`, "not valid JSON"},
	}
	for _, tc := range tests {
		var v struct {
			AssociationId         string
			FileSystemId          string
			ImportedFileChunkSize *int32
		}
		err := DecodeRequest(tc.op, strings.NewReader(tc.body), &v)
		if err == nil || !IsCode(err, CodeBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeRequest(%s) = %v, want BadRequest containing %q", tc.body, err, tc.want)
		}
	}
	var ok CreateDataRepositoryAssociationRequest
	if err := DecodeRequest("CreateDataRepositoryAssociation", strings.NewReader(`{"FileSystemId":"fs-0123456789abcdef0","DataRepositoryPath":"s3://b/p","S3":{"AutoImportPolicy":{"Events":["NEW"]}}}`), &ok); err != nil {
		t.Fatal(err)
	}
	if string(EncodeError(Errorf(CodeFileSystemNotFound, "x"))) != `{"__type":"FileSystemNotFound","Message":"x"}` {
		t.Error("EncodeError")
	}
}
