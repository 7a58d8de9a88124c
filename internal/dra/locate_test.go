package dra

import (
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
)

func TestLocate(t *testing.T) {
	for _, c := range []struct {
		fsPath, repo string
		want         Location
		bad          bool
	}{
		{"/ExtData", "s3://bkt/ExtData/", Location{"ExtData", "bkt", "ExtData/"}, false},
		{"/ExtData", "s3://bkt/ExtData", Location{"ExtData", "bkt", "ExtData/"}, false},
		{"/", "s3://bkt/", Location{".", "bkt", ""}, false},
		{"/a/b", "s3://bkt/p/q/", Location{"a/b", "bkt", "p/q/"}, false},
		{"ExtData", "s3://bkt/ExtData/", Location{}, true},    // not absolute
		{"/ExtData", "http://bkt/ExtData/", Location{}, true}, // not s3://
		{"/ExtData", "s3://bkt/a/../x/", Location{}, true},    // prefix that no key may map under
	} {
		got, err := Locate(api.DataRepositoryAssociation{AssociationId: "dra-0123456789abcdef0", FileSystemPath: c.fsPath, DataRepositoryPath: c.repo})
		if c.bad {
			if err == nil {
				t.Errorf("Locate(%q, %q) = %+v, want an error", c.fsPath, c.repo, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Locate(%q, %q) = %+v, %v; want %+v", c.fsPath, c.repo, got, err, c.want)
		}
	}
}
