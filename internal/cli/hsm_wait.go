package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/progress"
)

func newHsmWaitCmd(o *hsmOpts) *cobra.Command {
	var timeout string
	cmd := &cobra.Command{
		Use:   "wait [--timeout D] PATH...",
		Short: "Wait until what was written under the paths is exported (ferry only)",
		Long: `Waits until everything under each PATH (recursively for a directory) that
was closed, fsynced, renamed or deleted before the command started is exported
to the data repository, then exits 0. Writes made after it started do not
make it wait longer. This is the command to run before terminating the
machine or the file system's store: when it returns, the repository has
every file as it was when the command started.

With --timeout D (e.g. 90s, 10m, or seconds) it gives up after D and exits 1,
listing on stderr what is still pending, with the number of failed attempts
and the last error of each (an unreachable endpoint, a denied permission).
Exports that failed for good (a key longer than S3 allows, a file over 5 TiB)
do not hold the wait up: they are listed as failures with their cause and the
exit status is 1; they are tried again when the file changes.

A path need not exist any more: the export of its deletion or rename is
waited for too. On a terminal the number of pending exports is shown while it
waits.`,
		Example: `  ferry hsm wait /fsx
  ferry hsm wait --timeout 10m /fsx/ExtData/run42 /fsx/blended-tropomi
  ferry hsm wait /fsx && sudo shutdown -h now`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseTimeout(timeout)
			if err != nil {
				return usageError("%v", err)
			}
			return o.wait(cmd.Context(), args, d)
		},
	}
	cmd.Flags().StringVar(&timeout, "timeout", "0", "give up after this long (90s, 10m, 1h, or seconds); 0 waits until everything is exported")
	return cmd
}

// parseTimeout reads a duration ("90s", "10m") or a number of seconds.
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("--timeout %q: give a duration such as 90s, 10m or 1h, or a number of seconds", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 {
		return 0, fmt.Errorf("--timeout %q is negative: give a duration, or 0 to wait until everything is exported", s)
	}
	return d, nil
}

func (o *hsmOpts) wait(ctx context.Context, args []string, timeout time.Duration) error {
	const prefix = "ferry hsm wait"
	groups, failed, err := o.route(prefix, args)
	if err != nil {
		return &exitError{code: ExitFailed, err: err}
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	tty := progress.IsTerminal(o.g.stderr)
	for _, g := range groups {
		req := api.HSMRequest{Paths: g.abs}
		cctx := ctx
		var cancel context.CancelFunc = func() {}
		if !deadline.IsZero() {
			// The daemon ends the wait at the timeout and says what is
			// pending; the client's own deadline only guards against a
			// daemon that never answers.
			req.Timeout = max(time.Until(deadline).Seconds(), 0.001)
			cctx, cancel = context.WithDeadline(ctx, deadline.Add(30*time.Second))
		}
		var last api.WaitEvent
		shown := false
		err := g.t.client.Wait(cctx, req, func(ev api.WaitEvent) {
			last = ev
			if tty && !ev.Done && ev.Pending > 0 {
				fmt.Fprintf(o.g.stderr, "\r\033[Kwaiting for %d export%s", ev.Pending, plural(ev.Pending))
				shown = true
			}
		})
		cancel()
		g.t.client.Close()
		if shown {
			fmt.Fprint(o.g.stderr, "\r\033[K")
		}
		if err != nil {
			return o.hsmError(g.t, err)
		}
		failed += o.reportWait(prefix, last, timeout)
	}
	if failed > 0 {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// reportWait prints how a wait ended and returns the number of failures.
func (o *hsmOpts) reportWait(prefix string, ev api.WaitEvent, timeout time.Duration) int {
	w := o.g.stderr
	n := 0
	for _, f := range ev.Failed {
		fmt.Fprintf(w, "%s: %s: export failed permanently (%s): %s; it is tried again when the file changes\n", prefix, f.Path, f.Kind, f.LastError)
		n++
	}
	if ev.Error != "" {
		fmt.Fprintf(w, "%s: %s\n", prefix, ev.Error)
		n++
	}
	if ev.TimedOut {
		more := ""
		if ev.Pending > int64(len(ev.PendingFiles)) {
			more = fmt.Sprintf(" (the first %d listed)", len(ev.PendingFiles))
		}
		fmt.Fprintf(w, "%s: timed out after %v: %d export%s still pending%s:\n", prefix, timeout, ev.Pending, plural(ev.Pending), more)
		for _, f := range ev.PendingFiles {
			fmt.Fprintf(w, "  %s\n", describePending(f))
		}
		n++
	}
	return n
}

func describePending(f api.WaitFile) string {
	var b strings.Builder
	b.WriteString(f.Path)
	b.WriteString(" (")
	b.WriteString(f.Kind)
	if f.Pending != nil {
		fmt.Fprintf(&b, ", pending since %s", f.Pending.Format("15:04:05"))
	}
	if f.Attempts > 0 {
		fmt.Fprintf(&b, ", %d failed attempt%s", f.Attempts, plural(int64(f.Attempts)))
	}
	b.WriteString(")")
	if f.LastError != "" {
		b.WriteString(": ")
		b.WriteString(f.LastError)
	}
	return b.String()
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
