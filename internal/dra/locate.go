package dra

import (
	"fmt"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Location is where an association's two sides are, in the forms the
// importer, exporter and tasks work with.
type Location struct {
	Dir    string // store-relative directory ("ExtData"; "." for "/")
	Bucket string
	Prefix string // key prefix, "" or ending in "/" ("ExtData/")
}

// Locate returns the location of a. Paths that do not parse (a record
// written by hand, or by a version with other rules) are an error naming
// the association: callers log it and leave the association alone.
func Locate(a api.DataRepositoryAssociation) (Location, error) {
	u, err := s3x.ParseURL(a.DataRepositoryPath)
	if err != nil {
		return Location{}, fmt.Errorf("association %s: %w", a.AssociationId, err)
	}
	u = u.Dir()
	if err := keypath.CheckPrefix(u.Key); err != nil {
		return Location{}, fmt.Errorf("association %s: %w", a.AssociationId, err)
	}
	dir, err := keypath.StoreDir(a.FileSystemPath)
	if err != nil {
		return Location{}, fmt.Errorf("association %s: %w", a.AssociationId, err)
	}
	return Location{Dir: dir, Bucket: u.Bucket, Prefix: u.Key}, nil
}
