package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/hsm"
)

func newHsmStateCmd(o *hsmOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "state PATH...",
		Short: "Show the HSM state of files (lfs hsm_state)",
		Long: `Prints each file's HSM flags as lfs hsm_state does:
"PATH: (0x0000000d) released exists archived".`,
		Example: `  ferry hsm state /fsx/ExtData/file.nc
  find /fsx/ExtData -type f -exec ferry hsm state {} +`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runEach(cmd.Context(), api.HSMState, "ferry hsm state", args, func(user string, f api.HSMFile) {
				fmt.Fprintln(o.g.stdout, hsm.FormatState(user, hsm.Flags(f.Flags), f.ArchiveId))
			})
		},
	}
}
