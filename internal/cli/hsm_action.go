package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
)

func newHsmActionCmd(o *hsmOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "action PATH...",
		Short: "Show the HSM action running on files (lfs hsm_action)",
		Long: `Prints what runs on each file now, as lfs hsm_action does: "PATH: NOOP", or
"PATH: RESTORE running (1048576 bytes moved)" while its data is restored.`,
		Example: `  ferry hsm action /fsx/ExtData/big.nc`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runEach(cmd.Context(), api.HSMAction, "ferry hsm action", args, func(user string, f api.HSMFile) {
				fmt.Fprintf(o.g.stdout, "%s: %s\n", user, f.Action)
			})
		},
	}
}
