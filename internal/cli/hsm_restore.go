package cli

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/daemon"
	"github.com/ferry-hpc/ferry/internal/output"
	"github.com/ferry-hpc/ferry/internal/progress"
)

// restoreFlags are the flags of ferry hsm restore.
type restoreFlags struct {
	recursive, noProgress bool
	parallel              int
	fromDryrun, filesFrom string
	root, output          string
}

const restoreLong = `Fetches the data of each released file from the repository so that later
reads are local. With -r every file below a directory is restored: the daemon
walks the tree (importing directories never looked at) and restores --parallel
files at once in one plan, with a progress bar on a terminal.

Unlike lfs hsm_restore, which only queues the request, ferry hsm restore
returns when the data is local (or a file failed, which is reported with exit
status 1), so a script can rely on it: AWS's preload recipe
"find DIR -type f -print0 | xargs -0 -n 1 -P 8 ferry hsm restore" ends when
every file is local. Files already local are skipped at no cost.

Preloading exactly what a model run reads (ferry only):

--from-dryrun LOG reads a GEOS-Chem dry-run log (gcclassic --dryrun >
log.dryrun) as the model's download_data.py does: every line containing
": Opening" or ": Reading" (files found) or "FILE NOT FOUND" (files missing on
the disk of the dry run) names a file by its last field; doubled slashes are
folded, names are taken literally (no wildcard expansion), and paths with no
ExtData/ component (restart files of the run directory) are ignored.

--files-from FILE (- for stdin) reads a plain list of paths, one a line;
blank lines and lines starting with # are skipped.

Each path is mapped onto a mount: a path under a running ferry mount (or a
symlink into one) is taken as it is; any other path has the part before its
ExtData/ component replaced by --root DIR, so a log written on another machine
(/home/ubuntu/ExtData/HEMCO/...) maps to DIR/ExtData/HEMCO/.... A path that
maps to no mount stops the command before anything is fetched.

Exactly the listed files are restored (each once), --parallel at once, with a
progress bar on a terminal, and the command ends with a summary of the files
and bytes fetched, the files already local (no fetch) and the time taken;
--output json prints the same as one JSON object. Files the repository lacks
(no such name under the mount, or its object is gone) are listed, and the
exit status is then 1.`

const restoreExample = `  ferry hsm restore /fsx/ExtData/file.nc
  ferry hsm restore -r /fsx/ExtData/HEMCO
  find /fsx/ExtData -type f -print0 | xargs -0 -n 1 -P 8 ferry hsm restore

  # preload what a GEOS-Chem run will read, from its dry run
  ./gcclassic --dryrun > log.dryrun
  ferry hsm restore --from-dryrun log.dryrun --root /fsx
  ferry hsm restore --from-dryrun log.dryrun --root /fsx --parallel 16 --output json

  # a plain list of paths, from a file or stdin
  ferry hsm restore --files-from inputs.txt
  grep -h MERRA2 inputs.txt | ferry hsm restore --files-from - --root /fsx`

func newHsmRestoreCmd(o *hsmOpts) *cobra.Command {
	var fl restoreFlags
	cmd := &cobra.Command{
		Use:     "restore [-r] PATH... | --from-dryrun LOG [--root DIR] | --files-from FILE|-",
		Short:   "Fetch the data of released files (lfs hsm_restore)",
		Long:    restoreLong,
		Example: restoreExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fl.check(args); err != nil {
				return err
			}
			if fl.fromDryrun != "" || fl.filesFrom != "" {
				return o.restoreList(cmd, fl)
			}
			mode := progress.Auto
			if fl.noProgress || !fl.recursive {
				mode = progress.None
			}
			res, err := o.restorePaths(cmd.Context(), args, fl, mode, false)
			if err != nil {
				return err
			}
			if fl.recursive && mode != progress.None {
				fmt.Fprintln(o.g.stderr, progress.FormatSummary(res.sum))
			}
			if res.failed > 0 {
				return &exitError{code: ExitFailed}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&fl.recursive, "recursive", "r", false, "restore every file below each directory")
	f.IntVar(&fl.parallel, "parallel", daemon.DefaultRestoreParallel, "files restored at once")
	f.BoolVar(&fl.noProgress, "no-progress", false, "show no progress bar")
	f.StringVar(&fl.fromDryrun, "from-dryrun", "", "restore the ExtData files a GEOS-Chem dry-run log names (- for stdin)")
	f.StringVar(&fl.filesFrom, "files-from", "", "restore the files listed in FILE, one path a line (- for stdin)")
	f.StringVar(&fl.root, "root", "", "with --from-dryrun or --files-from: the directory holding ExtData/ on the mount, for paths not under a mount")
	f.StringVar(&fl.output, "output", "text", "with --from-dryrun or --files-from: text or json")
	return cmd
}

// check refuses flag combinations that make no sense.
func (fl *restoreFlags) check(args []string) error {
	if fl.parallel < 1 || fl.parallel > 64 {
		return usageError("--parallel %d is out of range: use 1 to 64", fl.parallel)
	}
	list := fl.fromDryrun != "" || fl.filesFrom != ""
	switch {
	case fl.fromDryrun != "" && fl.filesFrom != "":
		return usageError("give --from-dryrun LOG or --files-from FILE, not both")
	case list && len(args) > 0:
		return usageError("with --from-dryrun or --files-from the paths come from the list: drop the PATH arguments (%s)", args[0])
	case list && fl.recursive:
		return usageError("-r restores trees; --from-dryrun and --files-from restore exactly the files listed: drop -r")
	case !list && len(args) == 0:
		return usageError("give the PATHs to restore, or --from-dryrun LOG, or --files-from FILE\nSee 'ferry hsm restore --help'.")
	case !list && fl.root != "":
		return usageError("--root maps the paths of --from-dryrun or --files-from: give one of them, or drop --root")
	case fl.output != "text" && fl.output != "json":
		return usageError("--output %q: use text or json", fl.output)
	case !list && fl.output != "text":
		return usageError("--output applies to --from-dryrun and --files-from")
	}
	return nil
}

// restoreResult is what a restore did, over every daemon and batch.
type restoreResult struct {
	sum        progress.Summary
	files      int64 // files fetched
	bytes      int64 // bytes fetched
	local      int64 // regular files already local
	localBytes int64
	failed     int // failures of any kind (missing ones included)
	missing    []string
	failures   []api.HSMFile // failures other than missing files
}

// restoreBatch bounds the paths of one request (the daemon takes up to
// 100,000; smaller requests keep a request's body small).
const restoreBatch = 10000

// restorePaths sends the paths to the daemons that hold them, a batch at
// a time, and shows progress in mode. With collectMissing, files the
// repository lacks are collected in the result instead of printed.
func (o *hsmOpts) restorePaths(ctx context.Context, paths []string, fl restoreFlags, mode progress.Mode, collectMissing bool) (restoreResult, error) {
	const prefix = "ferry hsm restore"
	var res restoreResult
	groups, failed, err := o.route(prefix, paths)
	if err != nil {
		return res, &exitError{code: ExitFailed, err: err}
	}
	res.failed = failed
	rep := progress.New(o.g.stderr, progress.Options{Mode: mode, Label: "restore"})
	for _, g := range groups {
		for start := 0; start < len(g.abs); start += restoreBatch {
			batch := g.abs[start:min(start+restoreBatch, len(g.abs))]
			var last api.HSMEvent
			err := g.t.client.Restore(ctx, api.HSMRequest{Paths: batch, Recursive: fl.recursive, Parallel: fl.parallel}, func(ev api.HSMEvent) {
				rep.AddTotal(ev.TotalFiles-last.TotalFiles, ev.TotalBytes-last.TotalBytes)
				rep.Add(ev.DoneBytes - last.DoneBytes)
				for range ev.DoneFiles - last.DoneFiles {
					rep.FileDone()
				}
				if f := ev.File; f != nil {
					switch {
					case collectMissing && f.Missing:
						res.missing = append(res.missing, f.Path)
					default:
						res.failures = append(res.failures, *f)
						rep.Println(fmt.Sprintf("%s: %s", prefix, f.Error))
					}
				}
				last = ev
			})
			if err != nil {
				g.t.client.Close()
				rep.Close()
				return res, o.hsmError(g.t, err)
			}
			res.files += last.DoneFiles
			res.bytes += last.DoneBytes
			res.local += last.LocalFiles
			res.localBytes += last.LocalBytes
			res.failed += int(last.Failed)
		}
		g.t.client.Close()
	}
	res.sum = rep.Close()
	return res, nil
}

// restoreList runs --from-dryrun and --files-from: read the list, map it
// onto the mounts, restore exactly those files, and sum up.
func (o *hsmOpts) restoreList(cmd *cobra.Command, fl restoreFlags) error {
	start := time.Now()
	var paths []string
	ignored := 0
	src := fl.filesFrom
	if fl.fromDryrun != "" {
		src = fl.fromDryrun
		l, err := readList(fl.fromDryrun, cmd.InOrStdin(), "--from-dryrun", parseDryrunLog)
		if err != nil {
			return &exitError{code: ExitFailed, err: err}
		}
		if len(l.Paths) == 0 {
			return &exitError{code: ExitFailed, err: fmt.Errorf("--from-dryrun %s names no file under ExtData/ (%d lines name files): give the output of `gcclassic --dryrun`", src, l.Lines)}
		}
		paths, ignored = l.Paths, l.Ignored
	} else {
		l, err := readList(fl.filesFrom, cmd.InOrStdin(), "--files-from", parseFileList)
		if err != nil {
			return &exitError{code: ExitFailed, err: err}
		}
		paths = l
	}
	regs, err := running()
	if err != nil {
		return &exitError{code: ExitFailed, err: err}
	}
	m, err := newPathMapper(regs, fl.root)
	if err != nil {
		return usageError("%v", err)
	}
	mapped, err := m.mapPaths(paths)
	if err != nil {
		return usageError("%v", err)
	}
	mode := progress.Auto
	if fl.noProgress || (fl.output == "json" && !progress.IsTerminal(o.g.stderr)) {
		mode = progress.None
	}
	res, err := o.restorePaths(cmd.Context(), mapped, fl, mode, true)
	if err != nil {
		return err
	}
	sort.Strings(res.missing)
	sum := listSummary{Source: src, Files: len(mapped), IgnoredLines: ignored, Restored: res.files, RestoredBytes: res.bytes,
		AlreadyLocal: res.local, AlreadyLocalBytes: res.localBytes, Missing: res.missing, ElapsedSeconds: time.Since(start).Seconds()}
	for _, f := range res.failures {
		sum.Failed = append(sum.Failed, listFailure{Path: f.Path, Error: f.Error})
	}
	if err := o.printListSummary(sum, fl.output); err != nil {
		return err
	}
	if res.failed > 0 {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// listSummary is the end of a --from-dryrun or --files-from restore; it is
// the JSON object of --output json.
type listSummary struct {
	Source            string        `json:"Source"`
	Files             int           `json:"Files"`                  // unique files listed, after mapping
	IgnoredLines      int           `json:"IgnoredLines,omitempty"` // --from-dryrun: file lines outside ExtData/
	Restored          int64         `json:"Restored"`
	RestoredBytes     int64         `json:"RestoredBytes"`
	AlreadyLocal      int64         `json:"AlreadyLocal"`
	AlreadyLocalBytes int64         `json:"AlreadyLocalBytes"`
	Missing           []string      `json:"Missing"`
	Failed            []listFailure `json:"Failed"`
	ElapsedSeconds    float64       `json:"ElapsedSeconds"`
}

type listFailure struct {
	Path  string `json:"Path"`
	Error string `json:"Error"`
}

// printListSummary prints the summary: text on stdout (missing files on
// stderr), or one JSON object.
func (o *hsmOpts) printListSummary(s listSummary, format string) error {
	if s.Missing == nil {
		s.Missing = []string{}
	}
	if s.Failed == nil {
		s.Failed = []listFailure{}
	}
	if format == "json" {
		return output.Write(o.g.stdout, s, output.Options{Output: "json"})
	}
	for _, p := range s.Missing {
		fmt.Fprintf(o.g.stderr, "ferry hsm restore: not in the repository: %s\n", p)
	}
	elapsed := time.Duration(s.ElapsedSeconds * float64(time.Second)).Round(time.Millisecond)
	line := fmt.Sprintf("%d file%s: %d restored (%s) in %s", s.Files, plural(int64(s.Files)), s.Restored, progress.HumanSize(s.RestoredBytes), elapsed)
	if s.ElapsedSeconds > 0 && s.RestoredBytes > 0 {
		line += fmt.Sprintf(" (%.1f MB/s)", float64(s.RestoredBytes)/s.ElapsedSeconds/1e6)
	}
	line += fmt.Sprintf(", %d already local (%s)", s.AlreadyLocal, progress.HumanSize(s.AlreadyLocalBytes))
	if len(s.Missing) > 0 {
		line += fmt.Sprintf(", %d not in the repository", len(s.Missing))
	}
	if len(s.Failed) > 0 {
		line += fmt.Sprintf(", %d failed", len(s.Failed))
	}
	if s.IgnoredLines > 0 {
		line += fmt.Sprintf("; %d log line%s outside ExtData/ ignored", s.IgnoredLines, plural(int64(s.IgnoredLines)))
	}
	_, err := fmt.Fprintln(o.g.stdout, line)
	return err
}
