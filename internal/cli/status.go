package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/output"
	"github.com/ferry-hpc/ferry/internal/progress"
)

// statusFlags are ferry status's flags.
type statusFlags struct {
	fsID, store   string
	output, query string
	watch         bool
	interval      time.Duration
	count         int
}

// maxConflictLines bounds the recent conflicts the text view lists.
const maxConflictLines = 3

// clearScreen moves the cursor home and clears the screen, as top redraws.
const clearScreen = "\x1b[H\x1b[2J"

func newStatusCmd(g *globals) *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a file system's nodes, associations, backlog, tasks and cache",
		Long: `Shows one view of a ferry file system, gathered by its daemon in one call:

  nodes         the daemons serving it: node id, host, mount point, pid,
                version, start time, last heartbeat
  associations  path, repository, lifecycle; export backlog (journal entries
                waiting under the path, parked ones) and lag (age of the
                oldest); auto-import's events applied, last event, last
                sweep and conflicts
  import        import events queued and the age of the oldest; fetches
                running
  tasks         data repository tasks not ended, with their counters
  cache         file data local and released in the store (from a walk of
                the store, repeated in the background), bytes fetched since
                the daemon started, and the store's file system as df shows it

Which daemon: the one serving --file-system-id; else the mount that holds the
current directory; else the one of --store; else the only one running.

--output text (the default) prints the view above; json and table print the
daemon's answer as the fsx commands do. --query (JMESPath) selects from the
answer, printed as json unless --output says text or table (aws's formats). --watch refreshes every --interval: on a terminal it
clears and redraws in place, like top; otherwise it prints one snapshot per
interval (JSON: one document after another). --count stops after that many.`,
		Example: `  ferry status
  ferry status --watch --interval 5s
  ferry status --output json --query "Associations[*].[FileSystemPath,Export.Pending,Export.OldestAgeSeconds]"
  ferry status --file-system-id fs-0123456789abcdef0 --watch --count 3 --output json > status.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			o := &fsxOpts{g: g, store: f.store, output: f.output, query: f.query}
			t, err := o.pickOne(f.fsID)
			if err != nil {
				return o.serviceError(api.OpStatus, err)
			}
			defer t.client.Close()
			return f.run(cmd.Context(), g, o, t)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.fsID, "file-system-id", "", "show the file system of this id (fs-…)")
	fl.StringVar(&f.store, "store", "", "show the file system of the daemon serving this store directory")
	fl.StringVar(&f.output, "output", "text", "output format: text, json or table")
	fl.StringVar(&f.query, "query", "", "JMESPath query applied to the daemon's answer (printed as json, or as aws prints text and table)")
	fl.BoolVarP(&f.watch, "watch", "w", false, "refresh every --interval until interrupted (or --count)")
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "time between two refreshes of --watch")
	fl.IntVar(&f.count, "count", 0, "with --watch: stop after this many snapshots (0: until interrupted)")
	return cmd
}

// validate checks the flags before a daemon is looked for.
func (f *statusFlags) validate(cmd *cobra.Command) error {
	if f.query != "" && !cmd.Flags().Changed("output") {
		f.output = "json"
	}
	switch f.output {
	case "text", "json", "table":
	default:
		return usageError("--output %q: use text, json or table", f.output)
	}
	if f.query != "" {
		if err := output.CheckQuery(f.query); err != nil {
			return usageError("--query: %v", err)
		}
	}
	if f.interval <= 0 {
		return usageError("--interval %s: give a positive duration, e.g. 2s or 500ms", f.interval)
	}
	if f.count < 0 {
		return usageError("--count %d: give 0 (until interrupted) or more", f.count)
	}
	if cmd.Flags().Changed("count") && !f.watch {
		return usageError("--count counts the snapshots of --watch: add --watch")
	}
	return nil
}

// run shows the status once, or every interval with --watch.
func (f *statusFlags) run(ctx context.Context, g *globals, o *fsxOpts, t daemonTarget) error {
	tty := isTerminal(g.stdout)
	for n := 1; ; n++ {
		st, err := t.client.Status(ctx)
		if err != nil {
			if f.watch && errors.Is(err, context.Canceled) {
				return nil // interrupted: the end of a watch, as top's
			}
			if errors.Is(err, api.ErrUnreachable) {
				err = notRunning(fmt.Sprintf("file system %s (its socket %s does not answer)", t.reg.FileSystemId, t.reg.Socket))
			}
			return o.serviceError(api.OpStatus, err)
		}
		var buf bytes.Buffer
		if f.watch && tty {
			buf.WriteString(clearScreen)
		} else if n > 1 && f.output != "json" {
			buf.WriteByte('\n')
		}
		if err := f.render(&buf, st, g.stdout); err != nil {
			return &exitError{code: ExitFailed, err: err}
		}
		if _, err := g.stdout.Write(buf.Bytes()); err != nil {
			return &exitError{code: ExitFailed, err: err}
		}
		if !f.watch || (f.count > 0 && n >= f.count) {
			return nil
		}
		tm := time.NewTimer(f.interval)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil
		case <-tm.C:
		}
	}
}

// render writes one snapshot in the chosen format.
func (f *statusFlags) render(w io.Writer, st api.Status, out io.Writer) error {
	if f.output == "text" && f.query == "" {
		writeStatusText(w, st)
		return nil
	}
	return output.Write(w, st, output.Options{Output: f.output, Query: f.query, Title: api.OpStatus, Width: termWidth(out)})
}

// termWidth is the width of the terminal out is, 0 when it is none.
func termWidth(out io.Writer) int {
	if fd, ok := out.(*os.File); ok {
		if w, _, err := term.GetSize(int(fd.Fd())); err == nil {
			return w
		}
	}
	return 0
}

// writeStatusText prints the status for people: a header, then a section
// per part, columns aligned.
func writeStatusText(w io.Writer, st api.Status) {
	now := st.Time.Time
	fmt.Fprintf(w, "%s  %s  store %s (%s)\n", st.FileSystemId, st.Time.Format("2006-01-02 15:04:05 MST"), st.StorePath, st.CatalogEngine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nNODES\nNODE\tHOST\tPID\tVERSION\tSTARTED\tHEARTBEAT\tMOUNT POINT\n")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s ago\t%s\n", n.NodeId, n.Host, n.Pid, dash(n.Version),
			n.StartTime.Format("2006-01-02 15:04:05"), age(now.Sub(n.LastHeartbeat.Time).Seconds()), n.MountPoint)
	}
	tw.Flush()
	fmt.Fprintf(tw, "\nASSOCIATIONS\nID\tPATH\tREPOSITORY\tLIFECYCLE\tEXPORT\tEXPORT LAG\tIMPORT\tLAST EVENT\tLAST SWEEP\tCONFLICTS\n")
	for _, a := range st.Associations {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.AssociationId, a.FileSystemPath, a.DataRepositoryPath, a.Lifecycle,
			exportBacklog(a), exportLag(a.Export), importColumns(a, now))
	}
	if len(st.Associations) == 0 {
		fmt.Fprintln(tw, "(none: create one with ferry fsx create-data-repository-association)")
	}
	tw.Flush()
	for _, a := range st.Associations {
		if a.FailureDetails != nil && a.FailureDetails.Message != "" {
			fmt.Fprintf(w, "  %s: %s\n", a.AssociationId, a.FailureDetails.Message)
		}
		if b := a.BatchImport; b != nil {
			fmt.Fprintf(w, "  %s: batch import %s, %d objects%s\n", a.AssociationId, b.State, b.Objects, suffix(b.Message))
		}
	}
	e, i := st.Export, st.Import
	fmt.Fprintf(w, "\nEXPORT  %d pending (oldest %s), %d in flight, %d parked\n", e.Pending, age(e.OldestAgeSeconds), e.InFlight, e.Parked)
	fmt.Fprintf(w, "IMPORT  %d events pending (oldest %s), %d fetches in flight (%d stalled), %d conflicts since start\n",
		i.PendingEvents, age(i.OldestAgeSeconds), i.FetchesInFlight, i.FetchesStalled, i.Conflicts)
	for _, c := range i.RecentConflicts[:min(len(i.RecentConflicts), maxConflictLines)] {
		fmt.Fprintf(w, "        conflict %s %s ago: %s", c.Kind, age(now.Sub(c.Time.Time).Seconds()), c.Path)
		if c.CopyPath != "" {
			fmt.Fprintf(w, " (local changes kept in %s)", c.CopyPath)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(tw, "\nTASKS\nID\tTYPE\tLIFECYCLE\tSUCCEEDED\tFAILED\tTOTAL\tSTARTED\tPATHS\n")
	for _, t := range st.Tasks {
		started := "-"
		if t.StartTime != nil {
			started = age(now.Sub(t.StartTime.Time).Seconds()) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", t.TaskId, t.Type, t.Lifecycle, t.Status.SucceededCount, t.Status.FailedCount,
			t.Status.TotalCount, started, dash(strings.Join(t.Paths, " ")))
	}
	if len(st.Tasks) == 0 {
		fmt.Fprintln(tw, "(none running)")
	}
	tw.Flush()
	writeCacheText(w, st.Cache, now)
}

// writeCacheText prints the cache part of the status.
func writeCacheText(w io.Writer, c api.StatusCache, now time.Time) {
	fmt.Fprintf(w, "\nCACHE   ")
	if c.ScanTime == nil {
		fmt.Fprintf(w, "local and released data: counting (the store is being walked)\n")
	} else {
		fmt.Fprintf(w, "%s local, %s released (%d of %d files released; counted %s ago in %s)\n",
			progress.HumanSize(c.LocalBytes), progress.HumanSize(c.ReleasedBytes), c.ReleasedFiles, c.Files,
			age(now.Sub(c.ScanTime.Time).Seconds()), age(c.ScanSeconds))
		if c.ScanError != "" {
			fmt.Fprintf(w, "        the last walk stopped early: %s\n", c.ScanError)
		}
	}
	fmt.Fprintf(w, "        %s fetched since start\n", progress.HumanSize(c.FetchedBytes))
	fmt.Fprintf(w, "        store file system %.1f%% used, %s available of %s", c.StoreUsedPercent,
		progress.HumanSize(int64(min(c.StoreAvailableBytes, 1<<62))), progress.HumanSize(int64(min(c.StoreSizeBytes, 1<<62))))
	if c.AutoReleaseAbove > 0 {
		fmt.Fprintf(w, "; auto-release above %.0f%%", 100*c.AutoReleaseAbove)
	}
	fmt.Fprintln(w)
}

// exportBacklog is an association's EXPORT column: pending and parked
// entries, or "off" for an association that does not export and has none.
func exportBacklog(a api.StatusAssociation) string {
	b := a.Export
	if len(a.AutoExport) == 0 && b.Pending == 0 && b.Parked == 0 {
		return "off"
	}
	s := fmt.Sprintf("%d pending", b.Pending)
	if b.Parked > 0 {
		s += fmt.Sprintf(", %d parked", b.Parked)
	}
	return s
}

// exportLag is the EXPORT LAG column: the age of the oldest entry ("<="
// when it is the whole journal's, a bound).
func exportLag(b api.StatusAssociationBacklog) string {
	if b.Pending == 0 && b.Parked == 0 {
		return "-"
	}
	if b.OldestAgeBound {
		return "<=" + age(b.OldestAgeSeconds)
	}
	return age(b.OldestAgeSeconds)
}

// importColumns are the IMPORT, LAST EVENT, LAST SWEEP and CONFLICTS
// columns.
func importColumns(a api.StatusAssociation, now time.Time) string {
	ai := a.ImportActivity
	if ai == nil {
		return "off\t-\t-\t-"
	}
	src := "no source"
	if len(ai.Sources) > 0 {
		src = strings.ToLower(strings.Join(ai.Sources, "+"))
	}
	ago := func(t *api.Time) string {
		if t == nil {
			return "-"
		}
		return age(now.Sub(t.Time).Seconds()) + " ago"
	}
	return fmt.Sprintf("%d applied (%s)\t%s\t%s\t%d", ai.EventsApplied, src, ago(ai.LastEventTime), ago(ai.LastSweep), ai.Conflicts)
}

// age prints seconds as a short duration: 0s, 850ms, 3.2s, 4m10s, 2h5m.
func age(sec float64) string {
	d := time.Duration(max(sec, 0) * float64(time.Second))
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}
