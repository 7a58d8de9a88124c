package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/output"
	"github.com/ferry-hpc/ferry/internal/shorthand"
)

// Exit codes of aws CLI v2, which the fsx commands follow.
const (
	ExitParam   = 252 // the command line could not be parsed or validated
	ExitService = api.CLIExitCode
	ExitGeneral = 255 // anything else (here: no daemon to talk to)
)

// fsxOpts are the options every fsx command shares: aws's --output and
// --query, and ferry's --store to pick a daemon.
type fsxOpts struct {
	g      *globals
	output string
	query  string
	store  string
}

func newFsxCmd(g *globals) *cobra.Command {
	o := &fsxOpts{g: g}
	cmd := &cobra.Command{
		Use:   "fsx",
		Short: "Manage data repository associations and tasks like aws fsx",
		Long: `The fsx commands are those of "aws fsx" for data repository associations and tasks,
with the same flags, JSON shapes, --query (JMESPath), --output json|text|table,
error messages and exit codes (254 for a service error, 252 for a bad command
line). They talk to the ferry daemon of the file system over its control
socket.

Which daemon: the one serving --file-system-id; else the mount that holds the
current directory; else the one of --store DIR. Start one with
"ferry mount --store DIR MOUNTPOINT".`,
		Example: `  ferry fsx describe-file-systems
  ferry fsx create-data-repository-association --file-system-id fs-0123456789abcdef0 \
      --file-system-path /ExtData --data-repository-path s3://bucket/ExtData
  ferry fsx describe-data-repository-associations --query "Associations[*].Lifecycle"`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.output, "output", "json", "output format: json, text or table")
	pf.StringVar(&o.query, "query", "", "JMESPath query applied to the response")
	pf.StringVar(&o.store, "store", "", "talk to the daemon serving this store directory (ferry only)")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitParam, err: fmt.Errorf("%v\nSee '%s --help'.", err, c.CommandPath())}
	})
	cmd.AddCommand(newFsxCreateDRACmd(o), newFsxDescribeDRACmd(o), newFsxUpdateDRACmd(o), newFsxDeleteDRACmd(o), newFsxDescribeFSCmd(o),
		newFsxCreateTaskCmd(o), newFsxDescribeTasksCmd(o), newFsxCancelTaskCmd(o))
	return cmd
}

// paramError is aws's "Error parsing parameter" (exit 252).
func paramError(format string, args ...any) error {
	return &exitError{code: ExitParam, err: fmt.Errorf(format, args...)}
}

// validate checks --output and --query before anything is sent.
func (o *fsxOpts) validate() error {
	switch o.output {
	case "json", "text", "table":
	default:
		return paramError("argument --output: invalid choice: %q (choose from 'json', 'text', 'table')", o.output)
	}
	if o.query != "" {
		if err := output.CheckQuery(o.query); err != nil {
			return paramError("argument --query: %v", err)
		}
	}
	return nil
}

// print writes a response as --output and --query ask.
func (o *fsxOpts) print(op string, resp any) error {
	return output.Write(o.g.stdout, resp, output.Options{Output: o.output, Query: o.query, Title: op})
}

// serviceError prints an API error as aws does and returns exit code 254.
func (o *fsxOpts) serviceError(op string, err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) {
		fmt.Fprintf(o.g.stderr, "\n%s\n", ae.CLIMessage(op))
		return &exitError{code: ExitService}
	}
	if errors.Is(err, context.Canceled) {
		return &exitError{code: 130, err: err}
	}
	return &exitError{code: ExitGeneral, err: err}
}

// daemonTarget is a running daemon a command talks to.
type daemonTarget struct {
	reg    mounts.Registration
	client *api.Client
}

func newTarget(r mounts.Registration) daemonTarget {
	return daemonTarget{reg: r, client: api.NewClient(r.Socket)}
}

// notRunning says which daemon was looked for, where, and how to start it.
func notRunning(what string) error {
	return api.Errorf(api.CodeFileSystemNotFound, "no running ferry daemon serves %s (looked in %s, set by $%s): mount the file system first with `ferry mount --store DIR MOUNTPOINT`", what, mounts.RuntimeDir(), mounts.RuntimeDirEnv)
}

// running lists the live daemons that have a control socket.
func running() ([]mounts.Registration, error) {
	regs, err := mounts.List(mounts.RuntimeDir())
	if err != nil {
		return nil, err
	}
	out := regs[:0]
	for _, r := range regs {
		if r.Socket != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// byMount returns the daemon whose mount holds path (the deepest one).
func byMount(regs []mounts.Registration, path string) (mounts.Registration, bool) {
	var best mounts.Registration
	found := false
	for _, r := range regs {
		if (path == r.MountPoint || strings.HasPrefix(path, r.MountPoint+"/")) && len(r.MountPoint) > len(best.MountPoint) {
			best, found = r, true
		}
	}
	return best, found
}

// pick finds the daemon a command talks to: the one serving fsID; else the
// mount holding the current directory; else the one of --store. ok is
// false when nothing selected a daemon (and none was asked for by name).
func (o *fsxOpts) pick(fsID string) (t daemonTarget, ok bool, err error) {
	regs, err := running()
	if err != nil {
		return t, false, err
	}
	if fsID != "" {
		for _, r := range regs {
			if r.FileSystemId == fsID {
				return newTarget(r), true, nil
			}
		}
		return t, false, notRunning("file system " + fsID)
	}
	if o.store != "" {
		abs, err := filepath.Abs(o.store)
		if err != nil {
			return t, false, err
		}
		for _, r := range regs {
			if r.Store == abs {
				return newTarget(r), true, nil
			}
		}
		return t, false, notRunning("the store " + abs)
	}
	if cwd, err := os.Getwd(); err == nil {
		if r, ok := byMount(regs, cwd); ok {
			return newTarget(r), true, nil
		}
	}
	return t, false, nil
}

// pickOne is pick for commands that need exactly one daemon: with nothing
// selecting one, the only running daemon is used.
func (o *fsxOpts) pickOne(fsID string) (daemonTarget, error) {
	return o.pickAmong(fsID, func(regs []mounts.Registration) (daemonTarget, error) {
		ids := make([]string, len(regs))
		for i, r := range regs {
			ids[i] = r.FileSystemId
		}
		return daemonTarget{}, api.BadRequestf("%d ferry file systems run on this machine (%s): choose one with --file-system-id, --store, or by running the command inside its mount", len(regs), strings.Join(ids, ", "))
	})
}

// pickAmong is pick, then the only running daemon, then several's choice
// among the running ones.
func (o *fsxOpts) pickAmong(fsID string, several func([]mounts.Registration) (daemonTarget, error)) (daemonTarget, error) {
	t, ok, err := o.pick(fsID)
	if err != nil || ok {
		return t, err
	}
	regs, err := running()
	if err != nil {
		return t, err
	}
	switch len(regs) {
	case 0:
		return t, notRunning("any file system on this machine")
	case 1:
		return newTarget(regs[0]), nil
	}
	return several(regs)
}

// callAssociation sends a request about association id (update, delete)
// to the daemon that holds it.
func (o *fsxOpts) callAssociation(ctx context.Context, op, id string, req, resp any) error {
	if id == "" {
		return paramError("the following arguments are required: --association-id")
	}
	t, err := o.pickByAssociation(ctx, id)
	if err != nil {
		return o.serviceError(op, err)
	}
	return o.call(ctx, t, op, req, resp)
}

// s3Flag reads --s3 (shorthand or JSON) into *dst when it was given.
func s3Flag(fs *pflag.FlagSet, v string, dst **api.S3DataRepositoryConfiguration) error {
	if !fs.Changed("s3") {
		return nil
	}
	*dst = &api.S3DataRepositoryConfiguration{}
	return decodeParam("--s3", []string{v}, *dst, false)
}

// listFlags take several values after one flag, as aws's nargs='+' does
// (--tags Key=a,Value=b Key=c,Value=d).
var listFlags = map[string]bool{"--tags": true, "--filters": true, "--association-ids": true, "--file-system-ids": true, "--paths": true, "--task-ids": true}

// expandListFlags rewrites "--tags A B" into "--tags A --tags B" so the flag
// parser sees every value.
func expandListFlags(args []string) []string {
	out := make([]string, 0, len(args))
	cur := ""
	for _, a := range args {
		switch {
		case a == "--":
			cur = ""
			out = append(out, a)
		case listFlags[a]:
			cur = a
			out = append(out, a)
		case strings.HasPrefix(a, "-"):
			cur = ""
			out = append(out, a)
		case cur != "" && len(out) > 0 && out[len(out)-1] != cur:
			out = append(out, cur, a)
		default:
			out = append(out, a)
		}
	}
	return out
}

// readInputJSON reads --cli-input-json (JSON text, or file://PATH) into
// req strictly, as aws does.
func readInputJSON(op, v string, req any) error {
	if v == "" {
		return nil
	}
	if p, ok := strings.CutPrefix(v, "file://"); ok {
		b, err := os.ReadFile(p)
		if err != nil {
			return paramError("Error parsing parameter '--cli-input-json': %v", err)
		}
		v = string(b)
	}
	if err := api.DecodeRequest(op, strings.NewReader(v), req); err != nil {
		return paramError("Error parsing parameter '--cli-input-json': %s", api.AsAPIError(err).Message)
	}
	return nil
}

// decodeParam reads a structure or list parameter given as shorthand or JSON.
func decodeParam(name string, values []string, v any, list bool) error {
	var err error
	if list {
		err = shorthand.DecodeList(name, values, v)
	} else {
		err = shorthand.Decode(name, values[0], v)
	}
	if err != nil {
		return paramError("Error parsing parameter '%s': %v", name, err)
	}
	return nil
}

// boolPair reads --x / --no-x into a *bool (nil when neither was given).
func boolPair(fs *pflag.FlagSet, name string) (*bool, error) {
	yes, no := fs.Changed(name), fs.Changed("no-"+name)
	if yes && no {
		return nil, paramError("argument --%s: not allowed with argument --no-%s", name, name)
	}
	if !yes && !no {
		return nil, nil
	}
	v := yes
	return &v, nil
}

// call sends one operation to t and prints its response.
func (o *fsxOpts) call(ctx context.Context, t daemonTarget, op string, req, resp any) error {
	defer t.client.Close()
	if err := t.client.Call(ctx, op, req, resp); err != nil {
		if errors.Is(err, api.ErrUnreachable) {
			err = notRunning(fmt.Sprintf("file system %s (its socket %s does not answer: %v)", t.reg.FileSystemId, t.reg.Socket, errors.Unwrap(err)))
		}
		return o.serviceError(op, err)
	}
	return o.print(op, resp)
}
