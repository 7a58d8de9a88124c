package associations

import (
	"context"
	"errors"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
)

func (m *Worker) checkFS(id string) error {
	if id != m.fsID {
		return api.Errorf(api.CodeFileSystemNotFound, "file system %s is not served by this daemon (it serves %s): check --file-system-id, or mount that file system first with `ferry mount --store DIR MOUNTPOINT`", id, m.fsID)
	}
	return nil
}

func notFound(id string, err error) error {
	if errors.Is(err, catalog.ErrNotFound) {
		return api.Errorf(api.CodeDataRepositoryAssociationNotFound, "association %s does not exist: check the AssociationId (describe-data-repository-associations lists them)", id)
	}
	return err
}

// Create records a new association in CREATING and returns it at once.
func (m *Worker) Create(ctx context.Context, req api.CreateDataRepositoryAssociationRequest) (api.CreateDataRepositoryAssociationResponse, error) {
	var out api.CreateDataRepositoryAssociationResponse
	n, err := dra.NormalizeCreate(req)
	if err != nil {
		return out, err
	}
	if n.FerryRepositoryAccess, err = normalizeAccess(n.FerryRepositoryAccess); err != nil {
		return out, err
	}
	if err := checkUnsignedExport(api.DataRepositoryAssociation{S3: n.S3, FerryRepositoryAccess: n.FerryRepositoryAccess}, "create"); err != nil {
		return out, err
	}
	if err := m.checkFS(n.FileSystemId); err != nil {
		return out, err
	}
	fp := dra.CreateFingerprint(n)
	replay := func(id string) (api.CreateDataRepositoryAssociationResponse, error) {
		a, err := m.cat.Association(ctx, id)
		if err != nil {
			return out, notFound(id, err)
		}
		return api.CreateDataRepositoryAssociationResponse{Association: &a}, nil
	}
	if id, ok, err := dra.CheckToken(ctx, m.cat, api.OpCreateAssociation, n.ClientRequestToken, fp); err != nil {
		return out, err
	} else if ok {
		return replay(id)
	}
	m.createMu.Lock()
	existing, err := m.cat.Associations(ctx)
	if err == nil {
		err = dra.CheckCreate(existing, n)
	}
	if err != nil {
		m.createMu.Unlock()
		return out, err
	}
	a := dra.NewAssociation(n, dra.NewAssociationID(), api.Now())
	a.FerryRepositoryAccess = n.FerryRepositoryAccess
	if a.BatchImportMetaDataOnCreate {
		a.FerryStatus = &api.AssociationStatus{BatchImport: &api.BatchImportStatus{State: api.BatchImportPending}}
	}
	var tok *dra.TokenRecord
	if n.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpCreateAssociation, Token: n.ClientRequestToken, Fingerprint: fp, ResourceID: a.AssociationId}
	}
	m.pub.Lock()
	defer m.pub.Unlock()
	_, created, err := m.cat.CreateAssociation(ctx, a, tok)
	m.createMu.Unlock()
	if err != nil {
		return out, err
	}
	if !created { // the same token won a race: answer as its replay
		id, _, err := dra.CheckToken(ctx, m.cat, api.OpCreateAssociation, n.ClientRequestToken, fp)
		if err != nil {
			return out, err
		}
		return replay(id)
	}
	m.log.Info("association created", "dra", a.AssociationId, "path", a.FileSystemPath, "repository", a.DataRepositoryPath)
	m.Publish(ctx)
	m.wake()
	return api.CreateDataRepositoryAssociationResponse{Association: &a}, nil
}

// Describe answers a describe request from the catalog.
func (m *Worker) Describe(ctx context.Context, req api.DescribeDataRepositoryAssociationsRequest) (api.DescribeDataRepositoryAssociationsResponse, error) {
	out := api.DescribeDataRepositoryAssociationsResponse{Associations: []api.DataRepositoryAssociation{}}
	q, err := dra.ParseDescribeAssociations(req)
	if err != nil {
		return out, err
	}
	m.pub.RLock()
	items, cur, err := m.cat.DescribeAssociations(ctx, q)
	m.pub.RUnlock()
	if err != nil {
		return out, err
	}
	if items != nil {
		out.Associations = items
	}
	if cur != nil {
		out.NextToken = q.NextToken(*cur)
	}
	return out, nil
}

// Update records the new policies and chunk size in UPDATING; the worker
// checks the repository again and moves it to AVAILABLE or MISCONFIGURED.
func (m *Worker) Update(ctx context.Context, req api.UpdateDataRepositoryAssociationRequest) (api.UpdateDataRepositoryAssociationResponse, error) {
	var out api.UpdateDataRepositoryAssociationResponse
	if err := dra.ValidateAssociationID(req.AssociationId); err != nil {
		return out, err
	}
	if err := dra.ValidateToken(req.ClientRequestToken); err != nil {
		return out, err
	}
	if _, err := dra.NormalizeS3(req.S3); err != nil {
		return out, err
	}
	fp := dra.UpdateFingerprint(req)
	var tok *dra.TokenRecord
	if req.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpUpdateAssociation, Token: req.ClientRequestToken, Fingerprint: fp, ResourceID: req.AssociationId}
	}
	m.pub.Lock()
	defer m.pub.Unlock()
	a, prev, updated, err := m.cat.UpdateAssociation(ctx, req.AssociationId, tok, func(a *api.DataRepositoryAssociation) error {
		if err := dra.CanUpdate(*a); err != nil {
			return err
		}
		na, err := dra.ApplyUpdate(*a, req)
		if err != nil {
			return err
		}
		if err := checkUnsignedExport(na, "update of "+na.AssociationId); err != nil {
			return err
		}
		na.Lifecycle = api.LifecycleUpdating
		na.FailureDetails = nil
		*a = na
		return nil
	})
	if err != nil {
		return out, notFound(req.AssociationId, err)
	}
	if !updated {
		if prev.Fingerprint != fp || prev.ResourceID != req.AssociationId {
			_, _, err := dra.CheckToken(ctx, m.cat, api.OpUpdateAssociation, req.ClientRequestToken, fp)
			if err == nil {
				err = api.Errorf(api.CodeIncompatibleParameterError, "ClientRequestToken %q was used for another request", req.ClientRequestToken)
			}
			return out, err
		}
		if a.AssociationId == "" {
			return out, notFound(req.AssociationId, catalog.ErrNotFound)
		}
		return api.UpdateDataRepositoryAssociationResponse{Association: &a}, nil
	}
	m.log.Info("association updating", "dra", a.AssociationId)
	m.cancel(a.AssociationId) // a re-check in progress works on the old policy
	m.Publish(ctx)
	m.wake()
	return api.UpdateDataRepositoryAssociationResponse{Association: &a}, nil
}

// Delete moves the association to DELETING; the worker removes its files
// (DeleteDataInFileSystem) and then the association.
func (m *Worker) Delete(ctx context.Context, req api.DeleteDataRepositoryAssociationRequest) (api.DeleteDataRepositoryAssociationResponse, error) {
	var out api.DeleteDataRepositoryAssociationResponse
	if err := dra.ValidateAssociationID(req.AssociationId); err != nil {
		return out, err
	}
	if err := dra.ValidateToken(req.ClientRequestToken); err != nil {
		return out, err
	}
	fp := dra.DeleteFingerprint(req)
	var tok *dra.TokenRecord
	if req.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpDeleteAssociation, Token: req.ClientRequestToken, Fingerprint: fp, ResourceID: req.AssociationId}
	}
	del := req.DeleteDataInFileSystem != nil && *req.DeleteDataInFileSystem
	m.pub.Lock()
	defer m.pub.Unlock()
	a, prev, updated, err := m.cat.UpdateAssociation(ctx, req.AssociationId, tok, func(a *api.DataRepositoryAssociation) error {
		if a.Lifecycle == api.LifecycleDeleting {
			return nil // idempotent: the first delete's choice stands
		}
		if err := dra.CanDelete(*a); err != nil {
			return err
		}
		if err := dra.Transition(a.Lifecycle, api.LifecycleDeleting); err != nil {
			return api.BadRequestf("association %s is %s and cannot be deleted now", a.AssociationId, a.Lifecycle)
		}
		a.Lifecycle = api.LifecycleDeleting
		if a.FerryStatus == nil {
			a.FerryStatus = &api.AssociationStatus{}
		}
		a.FerryStatus.DeleteDataInFileSystem = &del
		return nil
	})
	if err != nil {
		return out, notFound(req.AssociationId, err)
	}
	if !updated && (prev.Fingerprint != fp || prev.ResourceID != req.AssociationId) {
		_, _, err := dra.CheckToken(ctx, m.cat, api.OpDeleteAssociation, req.ClientRequestToken, fp)
		if err == nil {
			err = api.Errorf(api.CodeIncompatibleParameterError, "ClientRequestToken %q was used for another request", req.ClientRequestToken)
		}
		return out, err
	}
	out = api.DeleteDataRepositoryAssociationResponse{AssociationId: req.AssociationId, Lifecycle: api.LifecycleDeleting, DeleteDataInFileSystem: del}
	if a.AssociationId != "" && a.FerryStatus != nil && a.FerryStatus.DeleteDataInFileSystem != nil {
		out.DeleteDataInFileSystem = *a.FerryStatus.DeleteDataInFileSystem
	}
	m.log.Info("association deleting", "dra", req.AssociationId, "delete_data", out.DeleteDataInFileSystem)
	m.cancel(req.AssociationId)
	m.Publish(ctx)
	m.wake()
	return out, nil
}
