package shorthand

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
)

// Expected trees were checked against awscli.shorthand.ShorthandParser.
func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // JSON
	}{
		{"a=b", `{"a":"b"}`},
		{"a=b,c", `{"a":["b","c"]}`},
		{"a=b,c=d", `{"a":"b","c":"d"}`},
		{"foo=a,b,c=d,e=f", `{"c":"d","e":"f","foo":["a","b"]}`},
		{"Key=Name,Value=dra-extdata", `{"Key":"Name","Value":"dra-extdata"}`},
		{"Name=file-system-id,Values=fs-123,fs-456", `{"Name":"file-system-id","Values":["fs-123","fs-456"]}`},
		{"AutoImportPolicy={Events=[NEW,CHANGED]},AutoExportPolicy={Events=[NEW]}", `{"AutoExportPolicy":{"Events":["NEW"]},"AutoImportPolicy":{"Events":["NEW","CHANGED"]}}`},
		{"Enabled=true,Path=/fsx/reports,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY", `{"Enabled":"true","Format":"REPORT_CSV_20191124","Path":"/fsx/reports","Scope":"FAILED_FILES_ONLY"}`},
		{`a='x,y',b="q\"r"`, `{"a":"x,y","b":"q\"r"}`},
		{`a=x\,y`, `{"a":"x,y"}`},
		{"a = b , c = d ", `{"a":"b","c":"d"}`},
		{"a=", `{"a":""}`},
		{"a=[]", `{"a":[]}`},
		{"a=[b, [c], {d=e}]", `{"a":["b",["c"],{"d":"e"}]}`},
		{"a=x=y", `{"a":"x=y"}`},
		{"a=b c=d", `{"a":"b c=d"}`},
		{"=x", `{"":"x"}`},
		{"a=ü,b=日本", `{"a":"ü","b":"日本"}`},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		b, _ := json.Marshal(got)
		if string(b) != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, b, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Key", "Expected: '=', received: 'EOF' for input:\nKey\n   ^"},
		{"a=b,a=c", `Second instance of key "a"`},
		{"a={b=c", "Expected: ',', received: 'EOF'"},
		{"a=[b", "Expected: ',', received: 'EOF'"},
		{`a="open`, "<double quoted>"},
		{"a=b,", "Expected: '<second>'"},
	}
	for _, tc := range tests {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestDecodeShapes(t *testing.T) {
	var s3 api.S3DataRepositoryConfiguration
	for _, in := range []string{
		"AutoImportPolicy={Events=[NEW,CHANGED,DELETED]}",
		`{"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}}`,
		"\n{\n\"AutoImportPolicy\": {\"Events\": [\"NEW\",\"CHANGED\",\"DELETED\"]}\n}",
	} {
		s3 = api.S3DataRepositoryConfiguration{}
		if err := Decode("--s3", in, &s3); err != nil {
			t.Fatal(err)
		}
		if s3.AutoImportPolicy == nil || len(s3.AutoImportPolicy.Events) != 3 || s3.AutoExportPolicy != nil {
			t.Errorf("%q → %+v", in, s3)
		}
	}
	var rep api.CompletionReport
	if err := Decode("--report", "Enabled=true,Path=/fsx/reports,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY", &rep); err != nil {
		t.Fatal(err)
	}
	if rep != (api.CompletionReport{Enabled: true, Path: "/fsx/reports", Format: api.ReportCSV20191124, Scope: api.ReportFailedFilesOnly}) {
		t.Errorf("report %+v", rep)
	}
	var rc api.ReleaseConfiguration
	if err := Decode("--release-configuration", "DurationSinceLastAccess={Unit=DAYS,Value=7}", &rc); err != nil || rc.DurationSinceLastAccess.Value != 7 {
		t.Errorf("release %+v %v", rc, err)
	}

	var tags []api.Tag
	if err := DecodeList("--tags", []string{"Key=Name,Value=dra-extdata", "Key=Owner,Value="}, &tags); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tags, []api.Tag{{Key: "Name", Value: "dra-extdata"}, {Key: "Owner", Value: ""}}) {
		t.Errorf("tags %+v", tags)
	}
	tags = nil
	if err := DecodeList("--tags", []string{`[{"Key":"a","Value":"b"}]`}, &tags); err != nil || len(tags) != 1 {
		t.Errorf("JSON tags %+v %v", tags, err)
	}
	var filters []api.Filter
	if err := DecodeList("--filters", []string{"Name=file-system-id,Values=fs-123,fs-456"}, &filters); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(filters, []api.Filter{{Name: "file-system-id", Values: []string{"fs-123", "fs-456"}}}) {
		t.Errorf("filters %+v", filters)
	}
	filters = nil
	if err := DecodeList("--filters", []string{"Name=file-system-id,Values=fs-0123456789abcdef0"}, &filters); err != nil || len(filters[0].Values) != 1 {
		t.Errorf("single value not made a list: %+v %v", filters, err)
	}
	var ids []string
	if err := DecodeList("--association-ids", []string{"dra-1", "dra-2"}, &ids); err != nil || len(ids) != 2 {
		t.Errorf("ids %v %v", ids, err)
	}
	var req api.DescribeDataRepositoryAssociationsRequest
	if err := Decode("--cli-input-json", `{"MaxResults": 5}`, &req); err != nil || *req.MaxResults != 5 {
		t.Errorf("int from JSON: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		param, in string
		v         any
		want      string
	}{
		{"--s3", "AutoImportPolicy={events=[NEW]}", &api.S3DataRepositoryConfiguration{}, `Unknown parameter in AutoImportPolicy: "events", must be one of: Events`},
		{"--s3", "Foo=1", &api.S3DataRepositoryConfiguration{}, `Unknown parameter in input: "Foo", must be one of: AutoImportPolicy, AutoExportPolicy`},
		{"--s3", `{"AutoImportPolicy": {"Events": ["NEW"]}`, &api.S3DataRepositoryConfiguration{}, "Invalid JSON"},
		{"--report", "Enabled=maybe", &api.CompletionReport{}, "invalid value for Enabled"},
		{"--s3", "AutoImportPolicy=NEW", &api.S3DataRepositoryConfiguration{}, "AutoImportPolicy must be a structure"},
		{"--report", "Path=[a,b]", &api.CompletionReport{}, "invalid type for Path"},
		{"--release-configuration", "DurationSinceLastAccess={Value=seven}", &api.ReleaseConfiguration{}, "give a whole number"},
	}
	for _, tc := range tests {
		err := Decode(tc.param, tc.in, tc.v)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "Error parsing parameter '"+tc.param+"': ") {
			t.Errorf("Decode(%s %q) = %v, want %q", tc.param, tc.in, err, tc.want)
		}
	}
	var tags []api.Tag
	if err := DecodeList("--tags", []string{"Key=a,Value=b", "Key"}, &tags); err == nil || !strings.Contains(err.Error(), "Expected: '='") {
		t.Errorf("bad tag error %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a=b,c", "AutoImportPolicy={Events=[NEW,CHANGED]}", `a='x\'y',b="\\"`, "a=[{b=[c]}]", "a=b,,c", "k=\\,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			_ = err.Error() // the location rendering must not panic
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		var s3 api.S3DataRepositoryConfiguration
		_ = Decode("--s3", s, &s3)
	})
}
