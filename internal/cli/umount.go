package cli

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/daemon"
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

As root ferry unmounts with umount2(2); otherwise with fusermount3 -u. A
mount with open files or working directories under it is busy: close them
(fuser -vm MOUNTPOINT lists them), or detach it with --lazy, which removes
the mount at once and lets the daemon exit when the last open file is closed.`,
		Example: `  ferry umount /fsx
  ferry umount --lazy /fsx`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := daemon.UnmountAndWait("", args[0], lazy, timeout)
			if errors.Is(err, daemon.ErrNotMounted) || errors.Is(err, daemon.ErrNotFerry) || errors.Is(err, daemon.ErrBusy) {
				return &exitError{code: ExitFailed, err: err}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&lazy, "lazy", false, "detach a busy mount now; the daemon exits when its last open file is closed")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the daemon to exit after the unmount")
	return cmd
}
