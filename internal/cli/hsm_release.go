package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newHsmReleaseCmd(o *hsmOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "release PATH...",
		Short: "Drop the local data of archived files (lfs hsm_release)",
		Long: `Drops the local data of each file; it stays visible with its size and
metadata ("released exists archived") and its data is fetched again from the
repository when read. Only an archived file without local changes that is not
open can be released: a dirty or open file is refused with the reason, and
the exit status is 1.`,
		Example: `  ferry hsm release /fsx/ExtData/file.nc
  find /fsx/ExtData -name '*.nc' -print0 | xargs -0 ferry hsm release`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runEach(cmd.Context(), api.HSMRelease, "ferry hsm release", args, func(string, api.HSMFile) {})
		},
	}
}
