package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/daemon"
	"github.com/ferry-hpc/ferry/internal/mounts"
)

func newUmountCmd(g *globals) *cobra.Command {
	var lazy bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:     "umount MOUNTPOINT",
		Aliases: []string{"unmount"},
		Short:   "Unmount a ferry file system",
		Long: `Unmount the ferry file system mounted on MOUNTPOINT and wait until its daemon
has exited, so the store can be mounted again at once.

Unmounting never drops pending exports: files written but not yet exported
stay in the export journal of the store's catalog, and the next mount of the
store exports them. ferry umount says how many are pending (on stderr). To
unmount only once everything is exported, run "ferry hsm wait MOUNTPOINT"
first.

As root ferry unmounts with umount2(2); otherwise with fusermount3 -u. A
mount with open files or working directories under it is busy: close them
(fuser -vm MOUNTPOINT lists them), or detach it with --lazy, which removes
the mount at once and lets the daemon exit when the last open file is closed.`,
		Example: `  ferry umount /fsx
  ferry hsm wait --timeout 10m /fsx && ferry umount /fsx
  ferry umount --lazy /fsx`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mp, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			reg, registered := mounts.Lookup(mounts.RuntimeDir(), mp)
			err = daemon.UnmountAndWait("", mp, lazy, timeout)
			if errors.Is(err, daemon.ErrNotMounted) || errors.Is(err, daemon.ErrNotFerry) || errors.Is(err, daemon.ErrBusy) {
				return &exitError{code: ExitFailed, err: err}
			}
			if err != nil {
				return err
			}
			if registered {
				reportPending(cmd.Context(), g, reg, lazy)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&lazy, "lazy", false, "detach a busy mount now; the daemon exits when its last open file is closed")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the daemon to exit after the unmount")
	return cmd
}

// reportPending says how many exports a stopped daemon left in the journal
// (read from its catalog), or, after --lazy, how many the daemon still has
// to do while it runs on.
func reportPending(ctx context.Context, g *globals, reg mounts.Registration, lazy bool) {
	if lazy {
		c := api.NewClient(reg.Socket)
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := c.ExportStatus(cctx)
		if err == nil && s.Pending > 0 {
			fmt.Fprintf(g.stderr, "ferry umount: %d export%s pending; the daemon (process %d) goes on exporting until its last open file is closed, and the next mount of %s resumes the rest\n",
				s.Pending, plural(s.Pending), reg.Pid, reg.Store)
		}
		return
	}
	n, age, err := daemon.PendingExports(reg.Catalog, reg.Store)
	if err != nil {
		fmt.Fprintf(g.stderr, "ferry umount: cannot read the export journal of %s: %v\n", reg.Store, err)
		return
	}
	if n > 0 {
		fmt.Fprintf(g.stderr, "ferry umount: %d export%s pending (the oldest waiting %v); they stay in the journal and are exported when %s is mounted again\n",
			n, plural(n), age.Round(time.Second), reg.Store)
	}
}
