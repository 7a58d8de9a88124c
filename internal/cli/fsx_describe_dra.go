package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/daemon"
)

func newFsxDescribeDRACmd(o *fsxOpts) *cobra.Command {
	var (
		ids, filters     []string
		maxResults       int32
		nextToken, input string
	)
	cmd := &cobra.Command{
		Use:   "describe-data-repository-associations",
		Short: "Describe data repository associations",
		Long: `Describes associations by --association-ids or --filters
(file-system-id, data-repository-type; ANDed), a page of --max-results (1–25)
at a time with --next-token.

Lifecycle is CREATING, AVAILABLE, MISCONFIGURED (FailureDetails.Message says
why), UPDATING, DELETING or FAILED. ferry adds the member FerryStatus: the
progress of the batch import (FerryStatus.BatchImport: State, Objects, Files,
Directories, Symlinks, Refused) and the time of the last repository check.

Without a file system chosen (--filters Name=file-system-id,…,
--store, or the current directory inside a mount) every running file system
of the machine is described.`,
		Example: `  ferry fsx describe-data-repository-associations \
      --filters Name=file-system-id,Values="$FSX_ID" \
      --query "Associations[*].{Path:FileSystemPath,S3:DataRepositoryPath,State:Lifecycle}"
  ferry fsx describe-data-repository-associations --association-ids dra-0123456789abcdef0 --output table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			var req api.DescribeDataRepositoryAssociationsRequest
			if err := readInputJSON(daemon.OpDescribeAssociations, input, &req); err != nil {
				return err
			}
			if len(ids) > 0 {
				req.AssociationIds = ids
			}
			if len(filters) > 0 {
				req.Filters = nil
				if err := decodeParam("--filters", filters, &req.Filters, true); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("max-results") {
				req.MaxResults = &maxResults
			}
			if nextToken != "" {
				req.NextToken = nextToken
			}
			return o.describeDRAs(cmd.Context(), req)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&ids, "association-ids", nil, "association ids (dra-…), up to 50")
	f.StringArrayVar(&filters, "filters", nil, "Name=file-system-id,Values=fs-… (shorthand or JSON)")
	f.Int32Var(&maxResults, "max-results", 25, "associations per page (1–25)")
	f.StringVar(&nextToken, "next-token", "", "continue after the page that returned this token")
	f.StringVar(&input, "cli-input-json", "", "the request as JSON (or file://PATH)")
	return cmd
}

// describeDRAs sends the request to the daemon the request or the context
// selects, or to every running daemon (merged; paging then needs one).
func (o *fsxOpts) describeDRAs(ctx context.Context, req api.DescribeDataRepositoryAssociationsRequest) error {
	op := daemon.OpDescribeAssociations
	fsID := ""
	for _, f := range req.Filters {
		if f.Name == api.FilterFileSystemID && len(f.Values) == 1 {
			fsID = f.Values[0]
		}
	}
	t, ok, err := o.pick(fsID)
	if err != nil {
		if api.IsCode(err, api.CodeFileSystemNotFound) && fsID != "" {
			// FSx answers a filter on an unknown file system with nothing.
			return o.print(op, api.DescribeDataRepositoryAssociationsResponse{Associations: []api.DataRepositoryAssociation{}})
		}
		return o.serviceError(op, err)
	}
	if ok {
		var resp api.DescribeDataRepositoryAssociationsResponse
		return o.call(ctx, t, op, req, &resp)
	}
	regs, err := running()
	if err != nil {
		return o.serviceError(op, err)
	}
	if len(regs) == 0 {
		return o.serviceError(op, notRunning("any file system on this machine"))
	}
	if len(regs) == 1 {
		var resp api.DescribeDataRepositoryAssociationsResponse
		return o.call(ctx, newTarget(regs[0]), op, req, &resp)
	}
	if len(regs) > 1 && (req.NextToken != "" || req.MaxResults != nil) {
		return o.serviceError(op, api.BadRequestf("--max-results and --next-token page through one file system: choose it with --filters Name=file-system-id,Values=fs-… (%d run on this machine)", len(regs)))
	}
	all := api.DescribeDataRepositoryAssociationsResponse{Associations: []api.DataRepositoryAssociation{}}
	found := len(req.AssociationIds) == 0
	for _, r := range regs {
		t := newTarget(r)
		var resp api.DescribeDataRepositoryAssociationsResponse
		err := t.client.Call(ctx, op, req, &resp)
		t.client.Close()
		if len(req.AssociationIds) > 0 && api.IsCode(err, api.CodeDataRepositoryAssociationNotFound) {
			// Asked for ids: a daemon answers for its own only.
			per := api.DescribeDataRepositoryAssociationsRequest{}
			for _, id := range req.AssociationIds {
				per.AssociationIds = []string{id}
				var one api.DescribeDataRepositoryAssociationsResponse
				if t.client.Call(ctx, op, per, &one) == nil {
					all.Associations = append(all.Associations, one.Associations...)
				}
			}
			continue
		}
		if errors.Is(err, api.ErrUnreachable) {
			continue // a daemon going away
		}
		if err != nil {
			return o.serviceError(op, err)
		}
		all.Associations = append(all.Associations, resp.Associations...)
	}
	if !found && len(all.Associations) < len(req.AssociationIds) {
		return o.serviceError(op, api.Errorf(api.CodeDataRepositoryAssociationNotFound, "no running file system has all of the associations %v: check the ids (without --association-ids every association is listed)", req.AssociationIds))
	}
	return o.print(op, all)
}
