package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/output"
)

func newHsmStateCmd(o *hsmOpts) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "state PATH...",
		Short: "Show the HSM state of files (lfs hsm_state)",
		Long: `Prints each file's HSM flags as lfs hsm_state does:
"PATH: (0x0000000d) released exists archived".

A conflict copy (the local content auto-import kept when the file's object
changed under local changes) has ", conflict_copy_of:ORIGINAL (CHANGED
TIME)" appended. --output json prints {"Files": [...]} with each file's
Path, Flags, ArchiveId and Conflict ({Kind, Of, Time}).`,
		Example: `  ferry hsm state /fsx/ExtData/file.nc
  find /fsx/ExtData -type f -exec ferry hsm state {} +
  ferry hsm state --output json /fsx/out/run.log.ferry-conflict-20250102T030405Z-1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out != "text" && out != "json" {
				return usageError("--output %q: use text or json", out)
			}
			var files []api.HSMFile
			err := o.runEach(cmd.Context(), api.HSMState, "ferry hsm state", args, func(user string, f api.HSMFile) {
				if out == "json" {
					f.Path = user
					files = append(files, f)
					return
				}
				fmt.Fprintln(o.g.stdout, formatState(user, f))
			})
			if out == "json" && len(files) > 0 {
				if werr := output.Write(o.g.stdout, api.HSMResponse{Files: files}, output.Options{Output: "json"}); werr != nil && err == nil {
					err = werr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&out, "output", "text", "text (lfs hsm_state's lines) or json")
	return cmd
}

// formatState is lfs hsm_state's line of f, with what a conflict copy is
// the copy of appended.
func formatState(user string, f api.HSMFile) string {
	s := hsm.FormatState(user, hsm.Flags(f.Flags), f.ArchiveId)
	if c := f.Conflict; c != nil {
		s += fmt.Sprintf(", conflict_copy_of:%s (%s %s)", c.Of, c.Kind, c.Time.UTC().Format(time.RFC3339))
	}
	return s
}
