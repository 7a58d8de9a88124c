package daemon

import (
	"context"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

// createTask is CreateDataRepositoryTask for this file system. An export
// task naming a path at or inside an unsigned association is refused: S3
// takes no anonymous writes (a task over a wider path passes over it).
func (d *Daemon) createTask(ctx context.Context, req api.CreateDataRepositoryTaskRequest) (api.CreateDataRepositoryTaskResponse, error) {
	if req.Type == api.TaskExportToRepository && len(req.Paths) > 0 {
		as, err := d.cat.Associations(ctx)
		if err != nil {
			return api.CreateDataRepositoryTaskResponse{}, err
		}
		t := dra.NewTable(as, nil)
		for _, p := range req.Paths {
			if a, _, ok := t.Holder(keypath.FromFSx(p)); ok && a.Access().Unsigned {
				return api.CreateDataRepositoryTaskResponse{}, api.BadRequestf("Paths: %q is in association %s, which reads its repository unsigned (--no-sign-request) and exports nothing: S3 takes no anonymous writes; copy the files under an association linked with credentials that may write, and export that", p, a.ID())
			}
		}
	}
	return d.tasks.Create(ctx, req)
}

// describeTasks is DescribeDataRepositoryTasks from the catalog.
func (d *Daemon) describeTasks(ctx context.Context, req api.DescribeDataRepositoryTasksRequest) (api.DescribeDataRepositoryTasksResponse, error) {
	return d.tasks.Describe(ctx, req)
}

// cancelTask is CancelDataRepositoryTask: PENDING or EXECUTING →
// CANCELING; the runner ends it CANCELED (files in flight finish).
func (d *Daemon) cancelTask(ctx context.Context, req api.CancelDataRepositoryTaskRequest) (api.CancelDataRepositoryTaskResponse, error) {
	t, err := d.tasks.Cancel(ctx, req.TaskId)
	if err != nil {
		return api.CancelDataRepositoryTaskResponse{}, err
	}
	return api.CancelDataRepositoryTaskResponse{Lifecycle: t.Lifecycle, TaskId: t.TaskId}, nil
}
