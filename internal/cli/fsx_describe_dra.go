package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newFsxDescribeDRACmd(o *fsxOpts) *cobra.Command {
	var df describeFlags
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
			if err := df.read(cmd, api.OpDescribeAssociations, &req, &req.AssociationIds, &req.Filters, &req.MaxResults, &req.NextToken); err != nil {
				return err
			}
			return o.describeDRAs(cmd.Context(), req)
		},
	}
	df.register(cmd, "association-ids", "association ids (dra-…), up to 50", "Name=file-system-id,Values=fs-… (shorthand or JSON)", 25, "associations per page (1–25)")
	return cmd
}

// describeFlags are the flags of the describe commands that page through
// resources: ids, --filters, --max-results, --next-token, --cli-input-json.
type describeFlags struct {
	ids, filters     []string
	maxResults       int32
	nextToken, input string
}

func (df *describeFlags) register(cmd *cobra.Command, idsFlag, idsHelp, filtersHelp string, maxDefault int32, maxHelp string) {
	f := cmd.Flags()
	f.StringArrayVar(&df.ids, idsFlag, nil, idsHelp)
	f.StringArrayVar(&df.filters, "filters", nil, filtersHelp)
	f.Int32Var(&df.maxResults, "max-results", maxDefault, maxHelp)
	f.StringVar(&df.nextToken, "next-token", "", "continue after the page that returned this token")
	f.StringVar(&df.input, "cli-input-json", "", "the request as JSON (or file://PATH)")
}

// read fills req (--cli-input-json first, then the flags given) through
// pointers to its members.
func (df *describeFlags) read(cmd *cobra.Command, op string, req any, ids *[]string, filters *[]api.Filter, maxResults **int32, nextToken *string) error {
	if err := readInputJSON(op, df.input, req); err != nil {
		return err
	}
	if len(df.ids) > 0 {
		*ids = df.ids
	}
	if len(df.filters) > 0 {
		*filters = nil
		if err := decodeParam("--filters", df.filters, filters, true); err != nil {
			return err
		}
	}
	if cmd.Flags().Changed("max-results") {
		*maxResults = &df.maxResults
	}
	if df.nextToken != "" {
		*nextToken = df.nextToken
	}
	return nil
}

// describeDRAs sends the request to the daemon the request or the context
// selects, or to every running daemon (merged; paging then needs one).
func (o *fsxOpts) describeDRAs(ctx context.Context, req api.DescribeDataRepositoryAssociationsRequest) error {
	return describeAcross(ctx, o, describeSpec[api.DescribeDataRepositoryAssociationsRequest, api.DescribeDataRepositoryAssociationsResponse]{
		op: api.OpDescribeAssociations, what: "associations", flag: "--association-ids",
		filters: req.Filters, ids: req.AssociationIds, paged: req.NextToken != "" || req.MaxResults != nil,
		notFound: api.CodeDataRepositoryAssociationNotFound,
		empty: func() api.DescribeDataRepositoryAssociationsResponse {
			return api.DescribeDataRepositoryAssociationsResponse{Associations: []api.DataRepositoryAssociation{}}
		},
		byID: func(id string) api.DescribeDataRepositoryAssociationsRequest {
			return api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{id}}
		},
		add: func(all *api.DescribeDataRepositoryAssociationsResponse, r api.DescribeDataRepositoryAssociationsResponse) int {
			all.Associations = append(all.Associations, r.Associations...)
			return len(all.Associations)
		},
	}, req)
}

// describeSpec says how describeAcross handles one describe operation.
type describeSpec[Req, Resp any] struct {
	op, what, flag string // operation; "associations"; "--association-ids"
	filters        []api.Filter
	ids            []string // asked for by id
	paged          bool     // MaxResults or NextToken given
	notFound       api.ErrorCode
	empty          func() Resp
	byID           func(id string) Req
	add            func(all *Resp, r Resp) int // merges r, returns the items so far
}

// describeAcross sends a describe request to the daemon the request (a
// file-system-id filter with one value) or the context selects, or to every
// running daemon, merging their answers (paging then needs one file system).
func describeAcross[Req, Resp any](ctx context.Context, o *fsxOpts, s describeSpec[Req, Resp], req Req) error {
	fsID := ""
	for _, f := range s.filters {
		if f.Name == api.FilterFileSystemID && len(f.Values) == 1 {
			fsID = f.Values[0]
		}
	}
	t, ok, err := o.pick(fsID)
	if err != nil {
		if api.IsCode(err, api.CodeFileSystemNotFound) && fsID != "" {
			// FSx answers a filter on an unknown file system with nothing.
			return o.print(s.op, s.empty())
		}
		return o.serviceError(s.op, err)
	}
	if ok {
		var resp Resp
		return o.call(ctx, t, s.op, req, &resp)
	}
	regs, err := running()
	if err != nil {
		return o.serviceError(s.op, err)
	}
	switch {
	case len(regs) == 0:
		return o.serviceError(s.op, notRunning("any file system on this machine"))
	case len(regs) == 1:
		var resp Resp
		return o.call(ctx, newTarget(regs[0]), s.op, req, &resp)
	case s.paged:
		return o.serviceError(s.op, api.BadRequestf("--max-results and --next-token page through one file system: choose it with --filters Name=file-system-id,Values=fs-… (%d run on this machine)", len(regs)))
	}
	all := s.empty()
	n := 0
	for _, r := range regs {
		t := newTarget(r)
		var resp Resp
		err := t.client.Call(ctx, s.op, req, &resp)
		if len(s.ids) > 0 && api.IsCode(err, s.notFound) {
			// Asked for ids: a daemon answers for its own only.
			for _, id := range s.ids {
				var one Resp
				if t.client.Call(ctx, s.op, s.byID(id), &one) == nil {
					n = s.add(&all, one)
				}
			}
			t.client.Close()
			continue
		}
		t.client.Close()
		if errors.Is(err, api.ErrUnreachable) {
			continue // a daemon going away
		}
		if err != nil {
			return o.serviceError(s.op, err)
		}
		n = s.add(&all, resp)
	}
	if len(s.ids) > 0 && n < len(s.ids) {
		return o.serviceError(s.op, api.Errorf(s.notFound, "no running file system has all of the %s %v: check the ids (without %s every one is listed)", s.what, s.ids, s.flag))
	}
	return o.print(s.op, all)
}
