package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newFsxDescribeFSCmd(o *fsxOpts) *cobra.Command {
	var (
		ids        []string
		maxResults int32
		nextToken  string
	)
	cmd := &cobra.Command{
		Use:   "describe-file-systems",
		Short: "Describe the ferry file systems running on this machine",
		Long: `Describes every file system whose daemon runs on this machine (or those of
--file-system-ids), as aws fsx describe-file-systems describes those of an
account. ferry adds FerryConfiguration: the store directory, mount point,
catalog engine, control socket and daemon process.`,
		Example: `  ferry fsx describe-file-systems
  ferry fsx describe-file-systems --query "FileSystems[*].[FileSystemId,FerryConfiguration.MountPoint]" --output text`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			op := api.OpDescribeFileSystems
			if err := o.validate(); err != nil {
				return err
			}
			if cmd.Flags().Changed("max-results") && maxResults < 1 {
				return paramError("argument --max-results: must be at least 1")
			}
			if nextToken != "" {
				return o.serviceError(op, api.BadRequestf("NextToken %q: every file system of the machine is described in one page", nextToken))
			}
			regs, err := running()
			if err != nil {
				return o.serviceError(op, err)
			}
			out := api.DescribeFileSystemsResponse{FileSystems: []api.FileSystem{}}
			seen := map[string]bool{}
			for _, r := range regs {
				if len(ids) > 0 && !containsID(ids, r.FileSystemId) {
					continue
				}
				t := newTarget(r)
				var resp api.DescribeFileSystemsResponse
				err := t.client.Call(cmd.Context(), op, api.DescribeFileSystemsRequest{FileSystemIds: []string{r.FileSystemId}}, &resp)
				t.client.Close()
				if errors.Is(err, api.ErrUnreachable) {
					continue
				}
				if err != nil {
					return o.serviceError(op, err)
				}
				for _, f := range resp.FileSystems {
					seen[f.FileSystemId] = true
				}
				out.FileSystems = append(out.FileSystems, resp.FileSystems...)
			}
			for _, id := range ids {
				if !seen[id] {
					return o.serviceError(op, notRunning("file system "+id))
				}
			}
			if cmd.Flags().Changed("max-results") && int(maxResults) < len(out.FileSystems) {
				out.FileSystems = out.FileSystems[:maxResults]
			}
			return o.print(op, out)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&ids, "file-system-ids", nil, "file system ids (fs-…)")
	f.Int32Var(&maxResults, "max-results", 0, "file systems to describe at most")
	f.StringVar(&nextToken, "next-token", "", "not used: all file systems fit in one page")
	return cmd
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
