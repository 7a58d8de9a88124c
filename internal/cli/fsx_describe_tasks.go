package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newFsxDescribeTasksCmd(o *fsxOpts) *cobra.Command {
	var df describeFlags
	cmd := &cobra.Command{
		Use:   "describe-data-repository-tasks",
		Short: "Describe data repository tasks",
		Long: `Describes tasks by --task-ids or --filters (file-system-id, task-lifecycle,
data-repository-association-id; ANDed, values of one filter ORed), a page of
--max-results at a time with --next-token, oldest first.

Lifecycle is PENDING, EXECUTING, CANCELING, then SUCCEEDED, FAILED
(FailureDetails.Message says why) or CANCELED. Status holds the counters:
TotalCount, SucceededCount, FailedCount, ReleasedCapacity and
LastUpdatedTime (at most a second behind while the task runs).

Without a file system chosen (--filters Name=file-system-id,…, --store, or
the current directory inside a mount) every running file system of the
machine is described.`,
		Example: `  ferry fsx describe-data-repository-tasks --task-ids task-0123456789abcdef0 \
      --query "DataRepositoryTasks[0].[Lifecycle,Status.SucceededCount,Status.FailedCount]" --output text
  ferry fsx describe-data-repository-tasks --filters Name=task-lifecycle,Values=EXECUTING,PENDING`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			var req api.DescribeDataRepositoryTasksRequest
			if err := df.read(cmd, api.OpDescribeTasks, &req, &req.TaskIds, &req.Filters, &req.MaxResults, &req.NextToken); err != nil {
				return err
			}
			return describeAcross(cmd.Context(), o, describeSpec[api.DescribeDataRepositoryTasksRequest, api.DescribeDataRepositoryTasksResponse]{
				op: api.OpDescribeTasks, what: "tasks", flag: "--task-ids",
				filters: req.Filters, ids: req.TaskIds, paged: req.NextToken != "" || req.MaxResults != nil,
				notFound: api.CodeDataRepositoryTaskNotFound,
				empty: func() api.DescribeDataRepositoryTasksResponse {
					return api.DescribeDataRepositoryTasksResponse{DataRepositoryTasks: []api.DataRepositoryTask{}}
				},
				byID: func(id string) api.DescribeDataRepositoryTasksRequest {
					return api.DescribeDataRepositoryTasksRequest{TaskIds: []string{id}}
				},
				add: func(all *api.DescribeDataRepositoryTasksResponse, r api.DescribeDataRepositoryTasksResponse) int {
					all.DataRepositoryTasks = append(all.DataRepositoryTasks, r.DataRepositoryTasks...)
					return len(all.DataRepositoryTasks)
				},
			}, req)
		},
	}
	df.register(cmd, "task-ids", "task ids (task-…), up to 50", "Name=file-system-id|task-lifecycle|data-repository-association-id,Values=… (shorthand or JSON)", 1000, "tasks per page (1–1000)")
	return cmd
}
