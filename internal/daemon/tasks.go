package daemon

import (
	"context"

	"github.com/ferry-hpc/ferry/internal/api"
)

// startTasks runs the task runner until stopTasks: tasks left PENDING,
// EXECUTING or CANCELING by the last mount (or a crash) go on now.
func (d *Daemon) startTasks() { d.stopTask = d.background("task runner", d.tasks.Run) }

// stopTasks stops the runner and waits for it; a task it was running stays
// EXECUTING in the catalog and runs again at the next mount. It must return
// before the exporter stops (export tasks use it).
func (d *Daemon) stopTasks() {
	if d.stopTask == nil {
		return
	}
	d.stopTask()
}

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
