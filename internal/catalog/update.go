package catalog

import (
	"encoding/json"
	"fmt"

	"github.com/ferry-hpc/ferry/internal/api"
)

// The read-modify-write of UpdateAssociation and UpdateTask, the same on
// every engine: the engine reads the row in its write transaction, these
// apply the caller's change and refuse one of what identifies the record.

// updatedAssociation applies fn to the association stored as record rec
// and returns it with its new record.
func updatedAssociation(id, rec string, fn func(*api.DataRepositoryAssociation) error) (api.DataRepositoryAssociation, []byte, error) {
	a, err := decodeAssociation(rec)
	if err != nil {
		return a, nil, err
	}
	orig := a
	if err := fn(&a); err != nil {
		return a, nil, err
	}
	if a.AssociationId != orig.AssociationId || a.FileSystemId != orig.FileSystemId || a.FileSystemPath != orig.FileSystemPath ||
		a.DataRepositoryPath != orig.DataRepositoryPath || !a.CreationTime.Equal(orig.CreationTime.Time) {
		return a, nil, fmt.Errorf("catalog: update of association %s changed an immutable member (id, file system, paths, creation time)", id)
	}
	b, err := json.Marshal(a)
	return a, b, err
}

// updatedTask applies fn to task t.
func updatedTask(id string, t api.DataRepositoryTask, fn func(*api.DataRepositoryTask) error) (api.DataRepositoryTask, error) {
	orig := t
	if err := fn(&t); err != nil {
		return t, err
	}
	if t.TaskId != orig.TaskId || t.FileSystemId != orig.FileSystemId || !t.CreationTime.Equal(orig.CreationTime.Time) {
		return t, fmt.Errorf("catalog: update of task %s changed an immutable member (id, file system, creation time)", id)
	}
	return t, nil
}
