package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/daemon"
	"github.com/ferry-hpc/ferry/internal/progress"
)

func newHsmRestoreCmd(o *hsmOpts) *cobra.Command {
	var (
		recursive, noProgress bool
		parallel              int
	)
	cmd := &cobra.Command{
		Use:   "restore [-r] PATH...",
		Short: "Fetch the data of released files (lfs hsm_restore)",
		Long: `Fetches the data of each released file from the repository so that later
reads are local. With -r every file below a directory is restored: the daemon
walks the tree (importing directories never looked at) and restores --parallel
files at once in one plan, with a progress bar on a terminal.

Unlike lfs hsm_restore, which only queues the request, ferry hsm restore
returns when the data is local (or a file failed, which is reported with exit
status 1), so a script can rely on it: AWS's preload recipe
"find DIR -type f -print0 | xargs -0 -n 1 -P 8 ferry hsm restore" ends when
every file is local. Files already local are skipped at no cost.`,
		Example: `  ferry hsm restore /fsx/ExtData/file.nc
  ferry hsm restore -r /fsx/ExtData/HEMCO
  find /fsx/ExtData -type f -print0 | xargs -0 -n 1 -P 8 ferry hsm restore`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 1 || parallel > 64 {
				return usageError("--parallel %d is out of range: use 1 to 64", parallel)
			}
			const prefix = "ferry hsm restore"
			groups, failed, err := o.route(prefix, args)
			if err != nil {
				return &exitError{code: ExitFailed, err: err}
			}
			mode := progress.Auto
			if noProgress || !recursive {
				mode = progress.None
			}
			rep := progress.New(o.g.stderr, progress.Options{Mode: mode, Label: "restore"})
			var last api.HSMEvent
			for _, g := range groups {
				last = api.HSMEvent{}
				err := g.t.client.Restore(cmd.Context(), api.HSMRequest{Paths: g.abs, Recursive: recursive, Parallel: parallel}, func(ev api.HSMEvent) {
					rep.AddTotal(ev.TotalFiles-last.TotalFiles, ev.TotalBytes-last.TotalBytes)
					rep.Add(ev.DoneBytes - last.DoneBytes)
					for range ev.DoneFiles - last.DoneFiles {
						rep.FileDone()
					}
					if ev.File != nil {
						rep.Println(fmt.Sprintf("%s: %s", prefix, ev.File.Error))
					}
					last = ev
				})
				g.t.client.Close()
				if err != nil {
					rep.Close()
					return o.hsmError(g.t, err)
				}
				failed += int(last.Failed)
			}
			sum := rep.Close()
			if recursive && mode != progress.None {
				fmt.Fprintln(o.g.stderr, progress.FormatSummary(sum))
			}
			if failed > 0 {
				return &exitError{code: ExitFailed}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&recursive, "recursive", "r", false, "restore every file below each directory")
	f.IntVar(&parallel, "parallel", daemon.DefaultRestoreParallel, "files restored at once")
	f.BoolVar(&noProgress, "no-progress", false, "show no progress bar")
	return cmd
}
