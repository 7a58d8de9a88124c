package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newHsmArchiveCmd(o *hsmOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "archive PATH...",
		Short: "Export files to their data repository now (lfs hsm_archive)",
		Long: `Exports each file, directory or symlink to the S3 repository of the
association holding it now, whatever the association's AutoExportPolicy:
the object gets the file's content and its POSIX metadata, and the file
becomes "exists archived". Like lfs hsm_archive it prints nothing on
success. Unlike lfs hsm_archive, which only queues the request, it returns
when the objects are written, so a script can rely on it.

A file that is already archived and clean costs at most a metadata update;
a released file is not uploaded again. A path outside every association,
or under one that is not AVAILABLE, fails with the reason and exit status 1.`,
		Example: `  ferry hsm archive /fsx/ExtData/output.nc
  find /fsx/ExtData/run42 -type f -print0 | xargs -0 ferry hsm archive`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runEach(cmd.Context(), api.HSMArchive, "ferry hsm archive", args, func(string, api.HSMFile) {})
		},
	}
}
