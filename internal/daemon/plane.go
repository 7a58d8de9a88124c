package daemon

import (
	"context"
	"errors"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/hsm"
)

// dataPlane is what the daemon asks of the importer (the contract in
// notes/importer-contract.md): association changes in, batch import, hsm
// restore/release/action, counters out. importerPlane adapts
// internal/importer to it; noPlane stands in where no importer is wired.
type dataPlane interface {
	SetAssociations(as []api.DataRepositoryAssociation)
	EnsureListed(ctx context.Context, dir string) error
	ImportAll(ctx context.Context, a api.DataRepositoryAssociation, progress func(api.BatchImportStatus)) (api.BatchImportStatus, error)
	Restore(ctx context.Context, rel string, progress func(n int64)) error
	Release(ctx context.Context, rel string) error
	Action(rel string) hsm.CurrentAction
	// Counters are the importer's statistics for /metrics, by metric name
	// (without the ferry_importer_ prefix).
	Counters() map[string]uint64
}

// errNoImporter: this build has no lazy import.
var errNoImporter = errors.New("this ferry build has no importer: lazy import is not available")

// noPlane: a mount without lazy import (the store shown as it is).
type noPlane struct{}

func (noPlane) SetAssociations([]api.DataRepositoryAssociation)    {}
func (noPlane) EnsureListed(context.Context, string) error         { return nil }
func (noPlane) Restore(context.Context, string, func(int64)) error { return nil }
func (noPlane) Release(context.Context, string) error              { return errNoImporter }
func (noPlane) Action(string) hsm.CurrentAction                    { return hsm.Noop }
func (noPlane) Counters() map[string]uint64                        { return nil }
func (noPlane) ImportAll(context.Context, api.DataRepositoryAssociation, func(api.BatchImportStatus)) (api.BatchImportStatus, error) {
	return api.BatchImportStatus{}, errNoImporter
}
