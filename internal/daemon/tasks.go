package daemon

import (
	"context"

	"github.com/ferry-hpc/ferry/internal/api"
)

// createTask is CreateDataRepositoryTask for this file system.
func (d *Daemon) createTask(ctx context.Context, req api.CreateDataRepositoryTaskRequest) (api.CreateDataRepositoryTaskResponse, error) {
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
