package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/mounts"
)

func newFsxDeleteDRACmd(o *fsxOpts) *cobra.Command {
	var id, token, input string
	cmd := &cobra.Command{
		Use:   "delete-data-repository-association",
		Short: "Unlink a file system path from its S3 prefix",
		Long: `Deletes an association. It goes to DELETING at once; the daemon then removes
it. With --delete-data-in-file-system the files and directories under its
path are deleted from the file system too; with --no-delete-data-in-file-system
(the default) they stay as ordinary files. Objects in S3 are never deleted.`,
		Example: `  ferry fsx delete-data-repository-association --association-id dra-0123456789abcdef0 \
      --delete-data-in-file-system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			var req api.DeleteDataRepositoryAssociationRequest
			if err := readInputJSON(api.OpDeleteAssociation, input, &req); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("association-id") {
				req.AssociationId = id
			}
			b, err := boolPair(f, "delete-data-in-file-system")
			if err != nil {
				return err
			}
			if b != nil {
				req.DeleteDataInFileSystem = b
			}
			if f.Changed("client-request-token") {
				req.ClientRequestToken = token
			}
			var resp api.DeleteDataRepositoryAssociationResponse
			return o.callAssociation(cmd.Context(), api.OpDeleteAssociation, req.AssociationId, req, &resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "association-id", "", "the association (dra-…)")
	f.Bool("delete-data-in-file-system", false, "also delete the files under the association's path")
	f.Bool("no-delete-data-in-file-system", false, "keep the files (the default)")
	f.StringVar(&token, "client-request-token", "", "idempotency token (1–63 of A-Za-z0-9_.-)")
	f.StringVar(&input, "cli-input-json", "", "the request as JSON (or file://PATH)")
	return cmd
}

// pickByAssociation finds the daemon that holds association id: the one
// the context selects, else the only one running, else whichever knows it.
func (o *fsxOpts) pickByAssociation(ctx context.Context, id string) (daemonTarget, error) {
	return o.pickHolder(func(t daemonTarget) bool {
		var resp api.DescribeDataRepositoryAssociationsResponse
		err := t.client.Call(ctx, api.OpDescribeAssociations, api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{id}}, &resp)
		return err == nil && len(resp.Associations) == 1
	}, api.Errorf(api.CodeDataRepositoryAssociationNotFound, "association %s does not exist on any running file system: check the id (ferry fsx describe-data-repository-associations lists them)", id))
}

// pickHolder is pickAmong where, among several daemons, the one for which
// holds is true is chosen; none is notFound.
func (o *fsxOpts) pickHolder(holds func(daemonTarget) bool, notFound error) (daemonTarget, error) {
	return o.pickAmong("", func(regs []mounts.Registration) (daemonTarget, error) {
		for _, r := range regs {
			t := newTarget(r)
			if holds(t) {
				return t, nil
			}
			t.client.Close()
		}
		return daemonTarget{}, notFound
	})
}
