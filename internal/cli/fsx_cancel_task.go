package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newFsxCancelTaskCmd(o *fsxOpts) *cobra.Command {
	var id, input string
	cmd := &cobra.Command{
		Use:   "cancel-data-repository-task",
		Short: "Cancel a data repository task",
		Long: `Cancels a PENDING or EXECUTING task: it moves to CANCELING at once, the files
in flight finish (nothing is undone) and it ends CANCELED. Canceling a task
that has ended is a DataRepositoryTaskEnded error; an unknown task is
DataRepositoryTaskNotFound.`,
		Example: `  ferry fsx cancel-data-repository-task --task-id task-0123456789abcdef0`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			op := api.OpCancelTask
			var req api.CancelDataRepositoryTaskRequest
			if err := readInputJSON(op, input, &req); err != nil {
				return err
			}
			if cmd.Flags().Changed("task-id") {
				req.TaskId = id
			}
			if req.TaskId == "" {
				return paramError("the following arguments are required: --task-id")
			}
			t, err := o.pickByTask(cmd.Context(), req.TaskId)
			if err != nil {
				return o.serviceError(op, err)
			}
			var resp api.CancelDataRepositoryTaskResponse
			return o.call(cmd.Context(), t, op, req, &resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "task-id", "", "the task (task-…)")
	f.StringVar(&input, "cli-input-json", "", "the request as JSON (or file://PATH)")
	return cmd
}

// pickByTask finds the daemon that holds task id: the one the context
// selects, else the only one running, else whichever knows it.
func (o *fsxOpts) pickByTask(ctx context.Context, id string) (daemonTarget, error) {
	return o.pickHolder(func(t daemonTarget) bool {
		var resp api.DescribeDataRepositoryTasksResponse
		err := t.client.Call(ctx, api.OpDescribeTasks, api.DescribeDataRepositoryTasksRequest{TaskIds: []string{id}}, &resp)
		return err == nil && len(resp.DataRepositoryTasks) == 1
	}, api.Errorf(api.CodeDataRepositoryTaskNotFound, "task %s does not exist on any running file system: check the id (ferry fsx describe-data-repository-tasks lists them)", id))
}
