package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
)

// The seed's commands, run verbatim with ferry in place of aws, against a
// MinIO holding the FSx guide's bucket; then the objects show under the mount.
func TestFsxSeedFlow(t *testing.T) {
	m := newMount(t)
	const bucket = "dzhang-imi-gchp-test"
	ensureBucket(t, m.srv, bucket)
	files := map[string]string{
		"ExtData/HEMCO/CEDS/v2021-06/2019/CEDS_NO_2019.nc":                                 "ceds no 2019",
		"ExtData/HEMCO/MEGAN/v2021-12/MEGAN.nc":                                            "megan",
		"ExtData/CHEM_INPUTS/FAST_JX/v2020-02/FJX_spec.dat":                                "fjx",
		"blended-tropomi/2019/01/tropomi_20190101.nc":                                      "tropomi 1",
		"blended-tropomi/2019/02/tropomi_20190201.nc":                                      "tropomi 2",
		"blended-boundary-conditions/v2024/GEOSChem.BoundaryConditions.20190101_0000z.nc4": "bc",
	}
	for k, v := range files {
		m.srv.Put(t, bucket, k, []byte(v))
	}
	r := m.script("seed-dra.sh")
	if r.code != 0 {
		t.Fatalf("seed create commands: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Three JSON documents, one per create, each CREATING (or already on).
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var ids []string
	for dec.More() {
		var resp api.CreateDataRepositoryAssociationResponse
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("create output: %v\n%s", err, r.stdout)
		}
		a := resp.Association
		if a.FileSystemId != m.id || len(a.Tags) != 1 || a.Tags[0].Key != "Name" || !a.BatchImportMetaDataOnCreate ||
			a.S3 == nil || a.S3.AutoImportPolicy == nil || len(a.S3.AutoImportPolicy.Events) != 3 || a.S3.AutoExportPolicy != nil {
			t.Errorf("created %+v", a)
		}
		ids = append(ids, a.AssociationId)
	}
	if len(ids) != 3 {
		t.Fatalf("%d associations created:\n%s", len(ids), r.stdout)
	}
	for _, id := range ids {
		a := m.waitState(id, api.LifecycleAvailable)
		if a.FerryStatus == nil || a.FerryStatus.BatchImport == nil || a.FerryStatus.BatchImport.State != api.BatchImportSucceeded {
			t.Errorf("%s batch import: %+v", id, a.FerryStatus)
		}
	}
	r = m.script("seed-describe.sh")
	if r.code != 0 {
		t.Fatalf("seed describe: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := `[
    {
        "Path": "/ExtData",
        "S3": "s3://dzhang-imi-gchp-test/ExtData/",
        "State": "AVAILABLE"
    },
    {
        "Path": "/blended-tropomi",
        "S3": "s3://dzhang-imi-gchp-test/blended-tropomi/",
        "State": "AVAILABLE"
    },
    {
        "Path": "/blended-boundary-conditions",
        "S3": "s3://dzhang-imi-gchp-test/blended-boundary-conditions/",
        "State": "AVAILABLE"
    }
]
`
	if r.stdout != want {
		t.Errorf("describe --query:\n%s\nwant:\n%s", r.stdout, want)
	}
	for k, v := range files {
		b, err := os.ReadFile(filepath.Join(m.mp, k))
		if err != nil || string(b) != v {
			t.Errorf("%s under the mount: %q %v", k, b, err)
		}
	}
	// Running the FSx guide's commands again replays them (same tokens, same
	// parameters): the same associations, no error.
	r = m.script("seed-dra.sh")
	if r.code != 0 || strings.Count(r.stdout, `"AssociationId": "`+ids[0]) != 1 || strings.Count(r.stdout, `"AssociationId": "`+ids[2]) != 1 {
		t.Errorf("replayed seed commands: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
