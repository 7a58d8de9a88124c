package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/mounts"
)

// hsmOpts are the options of every hsm command.
type hsmOpts struct {
	g     *globals
	fsID  string
	store string
}

func newHsmCmd(g *globals) *cobra.Command {
	o := &hsmOpts{g: g}
	cmd := &cobra.Command{
		Use:   "hsm",
		Short: "Show and change the HSM state of files, like lfs hsm_*",
		Long: `The hsm commands work like Lustre's lfs hsm_state, hsm_action, hsm_restore,
hsm_release and hsm_archive on files under a ferry mount, with the same
output. ferry hsm wait (ferry only) waits until what was written under the
paths is exported.

A file imported from the repository is "released exists archived" until its
data is read or restored, then "exists archived"; a local write adds "dirty";
an export makes it "exists archived" again. Each PATH is sent to the daemon
of the mount that holds it.`,
		Example: `  ferry hsm state /fsx/ExtData/file.nc
  ferry hsm restore -r /fsx/ExtData/HEMCO
  ferry hsm restore --from-dryrun log.dryrun --root /fsx
  find /fsx/ExtData -type f -print0 | xargs -0 -n 1 -P 8 ferry hsm restore
  ferry hsm release /fsx/ExtData/file.nc
  ferry hsm archive /fsx/ExtData/output.nc
  ferry hsm wait --timeout 10m /fsx`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.fsID, "file-system-id", "", "send every PATH to the daemon of this file system")
	pf.StringVar(&o.store, "store", "", "send every PATH to the daemon serving this store directory")
	cmd.AddCommand(newHsmStateCmd(o), newHsmActionCmd(o), newHsmReleaseCmd(o), newHsmRestoreCmd(o), newHsmArchiveCmd(o), newHsmWaitCmd(o))
	return cmd
}

// hsmGroup is the paths of one command that one daemon serves.
type hsmGroup struct {
	t    daemonTarget
	idx  []int    // positions in the command's arguments
	abs  []string // absolute paths, as sent
	user []string // as the user wrote them
}

// route sends each argument to the daemon whose mount holds it. Paths under
// no mount are reported on stderr (prefix) and counted in failed.
func (o *hsmOpts) route(prefix string, args []string) (groups []*hsmGroup, failed int, err error) {
	regs, err := running()
	if err != nil {
		return nil, 0, err
	}
	var fixed *daemonTarget
	if o.fsID != "" || o.store != "" {
		t, ok, err := (&fsxOpts{g: o.g, store: o.store}).pick(o.fsID)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			fixed = &t
		}
	}
	byID := map[string]*hsmGroup{}
	for i, a := range args {
		abs, err := filepath.Abs(a)
		if err != nil {
			fmt.Fprintf(o.g.stderr, "%s: %s: %v\n", prefix, a, err)
			failed++
			continue
		}
		var r mounts.Registration
		ok := false
		if fixed != nil {
			r, ok = fixed.reg, true
		} else if r, ok = byMount(regs, abs); !ok {
			// The path may reach the mount through a symlink.
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				if r, ok = byMount(regs, real); ok {
					abs = real
				}
			}
		}
		if !ok {
			fmt.Fprintf(o.g.stderr, "%s: %s is not under a running ferry mount (looked in %s): mount its file system with `ferry mount --store DIR MOUNTPOINT`, or name it with --file-system-id\n", prefix, a, mounts.RuntimeDir())
			failed++
			continue
		}
		g := byID[r.FileSystemId]
		if g == nil {
			g = &hsmGroup{t: newTarget(r)}
			byID[r.FileSystemId] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.abs = append(g.abs, abs)
		g.user = append(g.user, a)
	}
	return groups, failed, nil
}

// hsmError turns a failure to talk to a daemon into the command's error.
func (o *hsmOpts) hsmError(t daemonTarget, err error) error {
	if errors.Is(err, api.ErrUnreachable) {
		err = notRunning(fmt.Sprintf("file system %s (its socket %s does not answer)", t.reg.FileSystemId, t.reg.Socket))
	}
	if ae := new(api.APIError); errors.As(err, &ae) {
		return &exitError{code: ExitFailed, err: errors.New(ae.Message)}
	}
	return &exitError{code: ExitFailed, err: err}
}

// runEach sends op for every argument and calls show for each answer in
// argument order; failures print on stderr and make the exit code 1.
func (o *hsmOpts) runEach(ctx context.Context, op, prefix string, args []string, show func(user string, f api.HSMFile)) error {
	groups, failed, err := o.route(prefix, args)
	if err != nil {
		return &exitError{code: ExitFailed, err: err}
	}
	type answer struct {
		user string
		f    api.HSMFile
		ok   bool
	}
	answers := make([]answer, len(args))
	for _, g := range groups {
		resp, err := g.t.client.HSM(ctx, op, api.HSMRequest{Paths: g.abs})
		g.t.client.Close()
		if err != nil {
			return o.hsmError(g.t, err)
		}
		for j, f := range resp.Files {
			if j < len(g.idx) {
				answers[g.idx[j]] = answer{g.user[j], f, true}
			}
		}
	}
	for _, a := range answers {
		switch {
		case !a.ok:
		case a.f.Error != "":
			failed++
			fmt.Fprintf(o.g.stderr, "%s: %s\n", prefix, hsmFailure(op, a.user, a.f))
		default:
			show(a.user, a.f)
		}
	}
	if failed > 0 {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// hsmFailure words a failed file as lfs does: "can't get hsm state for
// PATH: No such file or directory"; a refusal keeps the daemon's reason.
func hsmFailure(op, user string, f api.HSMFile) string {
	if f.Errno != "" && (op == api.HSMState || op == api.HSMAction) {
		what := "hsm state"
		if op == api.HSMAction {
			what = "hsm action"
		}
		return fmt.Sprintf("can't get %s for %s: %s", what, user, f.Errno)
	}
	return f.Error
}
