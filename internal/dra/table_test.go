package dra

import (
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

func TestTable(t *testing.T) {
	mk := func(id, fsPath, repo string, life api.DataRepositoryLifecycle, exp, imp []api.EventType) api.DataRepositoryAssociation {
		a := api.DataRepositoryAssociation{AssociationId: id, FileSystemPath: fsPath, DataRepositoryPath: repo, Lifecycle: life, S3: &api.S3DataRepositoryConfiguration{}}
		if exp != nil {
			a.S3.AutoExportPolicy = &api.AutoExportPolicy{Events: exp}
		}
		if imp != nil {
			a.S3.AutoImportPolicy = &api.AutoImportPolicy{Events: imp}
		}
		return a
	}
	var bad []string
	tab := NewTable([]api.DataRepositoryAssociation{
		mk("dra-1", "/ExtData", "s3://inbucket/pre", api.LifecycleAvailable, nil, []api.EventType{api.EventNew}),
		mk("dra-2", "/out", "s3://outbucket", api.LifecycleMisconfigured, []api.EventType{api.EventNew, api.EventChanged}, nil),
		mk("dra-3", "/gone", "s3://gonebucket/x/", api.LifecycleDeleting, []api.EventType{api.EventNew}, nil),
		mk("dra-4", "/bad", "http://not-s3", api.LifecycleAvailable, nil, nil),
	}, func(a api.DataRepositoryAssociation, err error) { t.Log(err); bad = append(bad, a.AssociationId) })
	if len(bad) != 1 || bad[0] != "dra-4" || len(tab.All()) != 3 {
		t.Fatalf("bad %v, table %d", bad, len(tab.All()))
	}
	for _, c := range []struct {
		rel, id, in string
	}{
		{"ExtData", "dra-1", "."}, {"ExtData/a/b", "dra-1", "a/b"}, {"ExtDataX/a", "", ""},
		{"out/f", "dra-2", "f"}, {"gone/x", "dra-3", "x"}, {".", "", ""}, {"bad/f", "", ""},
	} {
		a, in, ok := tab.Holder(c.rel)
		if (c.id == "") == ok || ok && (a.ID() != c.id || in != c.in) {
			t.Errorf("Holder(%q) = %v %q %v, want %s %q", c.rel, a, in, ok, c.id, c.in)
		}
	}
	in, _ := tab.ByID("dra-1")
	out, _ := tab.ByID("dra-2")
	gone, _ := tab.ByID("dra-3")
	if _, ok := tab.ByID("dra-4"); ok {
		t.Error("an association whose paths do not parse is in the table")
	}
	if k, err := in.Key("a/b", keypath.File); err != nil || k != "pre/a/b" || in.Bucket != "inbucket" {
		t.Errorf("key %q %v, bucket %q", k, err, in.Bucket)
	}
	if in.StorePath("a") != "ExtData/a" || !in.Serves() || !in.Reads() || in.Journals() || in.Exports(api.EventNew) || !in.Imports(api.EventNew) {
		t.Errorf("import-only AVAILABLE association: %+v", in)
	}
	if out.Serves() || !out.Reads() || !out.Journals() || !out.Exports(api.EventDeleted, api.EventChanged) || out.Exports(api.EventDeleted) {
		t.Errorf("exporting MISCONFIGURED association: %+v", out)
	}
	if !gone.Gone() || gone.Journals() || gone.Reads() {
		t.Errorf("DELETING association: %+v", gone)
	}
	var none *Table
	if _, _, ok := none.Holder("x"); ok || len(none.All()) != 0 {
		t.Error("a nil table holds something")
	}
}
