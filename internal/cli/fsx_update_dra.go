package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newFsxUpdateDRACmd(o *fsxOpts) *cobra.Command {
	var (
		id, s3v, token, input string
		chunk                 int32
	)
	cmd := &cobra.Command{
		Use:   "update-data-repository-association",
		Short: "Change an association's policies or chunk size",
		Long: `Updates the import/export policies (--s3, which replaces the whole S3 member:
a policy left out is turned off) or --imported-file-chunk-size of an
association. Its paths cannot change. The association goes to UPDATING and
back to AVAILABLE once the repository is checked again — or MISCONFIGURED
with the reason (an update is also how to re-check a MISCONFIGURED
association at once).`,
		Example: `  ferry fsx update-data-repository-association --association-id dra-0123456789abcdef0 \
      --s3 'AutoImportPolicy={Events=[NEW,CHANGED,DELETED]},AutoExportPolicy={Events=[NEW,CHANGED]}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			var req api.UpdateDataRepositoryAssociationRequest
			if err := readInputJSON(api.OpUpdateAssociation, input, &req); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("association-id") {
				req.AssociationId = id
			}
			if f.Changed("imported-file-chunk-size") {
				req.ImportedFileChunkSize = &chunk
			}
			if err := s3Flag(f, s3v, &req.S3); err != nil {
				return err
			}
			if f.Changed("client-request-token") {
				req.ClientRequestToken = token
			}
			var resp api.UpdateDataRepositoryAssociationResponse
			return o.callAssociation(cmd.Context(), api.OpUpdateAssociation, req.AssociationId, req, &resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "association-id", "", "the association (dra-…)")
	f.Int32Var(&chunk, "imported-file-chunk-size", 1024, "MiB of data one file stripe holds (1–512000)")
	f.StringVar(&s3v, "s3", "", "the new policies (shorthand or JSON); replaces the S3 member")
	f.StringVar(&token, "client-request-token", "", "idempotency token (1–63 of A-Za-z0-9_.-)")
	f.StringVar(&input, "cli-input-json", "", "the request as JSON (or file://PATH)")
	return cmd
}
