// Package cli holds ferry's cobra commands, one file per command. Commands
// parse flags, build the parts they need (S3 client, transfer engine,
// progress) and print results in aws's formats; the work itself lives in the
// packages they call.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Exit codes, as the aws CLI's s3 commands use them.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the command failed, or some transfers failed
	ExitSkipped = 2 // usage error, or some files were skipped with a warning
)

// exitError carries an exit code out of a command. A nil err with a code
// means the command already reported what went wrong.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad flags or arguments: exit code 2 and a hint to --help.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitSkipped, err: fmt.Errorf(format, args...)}
}

// globals are the flags every command shares (aws's global options).
type globals struct {
	profile     string
	region      string
	endpointURL string
	// noSignRequest is aws's global --no-sign-request; requestPayer is
	// --request-payer of the s3 commands (aws has it on its transfer
	// commands; ferry on every s3 command).
	noSignRequest bool
	requestPayer  string
	cpuProfile    string
	stdout        io.Writer
	stderr        io.Writer
	// args are the arguments ferry was run with (Main's), as given: a
	// --background mount runs them again, without --background.
	args []string
}

// s3Config returns the S3 configuration the global flags select.
func (g *globals) s3Config(maxConns int) s3x.Config {
	return s3x.Config{Profile: g.profile, Region: g.region, EndpointURL: g.endpointURL, MaxConns: maxConns,
		Access: s3x.Access{Unsigned: g.noSignRequest, RequestPayer: g.requestPayer}}
}

// s3Client builds the S3 client of an s3 command: the global flags'
// configuration, with --no-sign-request and --request-payer checked first
// (a usage error names the flag and its values).
func (g *globals) s3Client(ctx context.Context, maxConns int) (*s3x.Client, error) {
	cfg := g.s3Config(maxConns)
	if err := cfg.Access.Validate(); err != nil {
		return nil, usageError("%v", err)
	}
	c, err := s3x.New(ctx, cfg)
	if err != nil {
		return nil, &exitError{code: ExitFailed, err: err}
	}
	return c, nil
}

// NewRoot builds the ferry command tree for the process's own arguments
// (os.Args, which `ferry mount --background` runs again).
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	return newRoot(&globals{stdout: stdout, stderr: stderr, args: os.Args[1:]})
}

func newRoot(g *globals) *cobra.Command {
	stdout, stderr := g.stdout, g.stderr
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Move data between POSIX file systems and S3-compatible stores",
		Long: `ferry copies and syncs between directories and S3-compatible stores with
the semantics of "aws s3", only faster.

Credentials, region and endpoint come from the standard AWS chain
(AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3,
~/.aws/config, the EC2 instance metadata service) or the flags below.
A public bucket is read without credentials with --no-sign-request.`,
		Example: `  ferry s3 sync s3://bucket/ExtData ./ExtData
  ferry s3 ls s3://bucket/ --recursive --summarize --human-readable
  ferry --endpoint-url http://127.0.0.1:9000 s3 cp big.nc s3://bucket/big.nc`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.profile, "profile", "", "use this profile from ~/.aws/config and ~/.aws/credentials")
	pf.StringVar(&g.region, "region", "", "AWS region (default from the configuration chain, else us-east-1)")
	pf.StringVar(&g.endpointURL, "endpoint-url", "", "S3 endpoint, e.g. http://127.0.0.1:9000 (default $AWS_ENDPOINT_URL_S3); enables path-style addressing")
	pf.BoolVar(&g.noSignRequest, "no-sign-request", false, "send requests unsigned, without credentials (public buckets); the credential chain is not consulted")
	pf.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	pf.MarkHidden("cpuprofile")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%v\nSee '%s --help'.", err, c.CommandPath())
	})
	root.AddCommand(newVersionCmd(g), newS3Cmd(g), newMountCmd(g), newUmountCmd(g), newFsxCmd(g), newHsmCmd(g), newStatusCmd(g))
	return root
}

// Main runs ferry with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(&globals{stdout: stdout, stderr: stderr, args: args})
	root.SetArgs(expandListFlags(args))
	var stopProfile func()
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		path, _ := cmd.Flags().GetString("cpuprofile")
		if bg, _ := cmd.Flags().GetBool("background"); path == "" || bg {
			return nil // a --background mount: the daemon it starts profiles
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	err := root.ExecuteContext(ctx)
	if stopProfile != nil {
		stopProfile()
	}
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "ferry:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "ferry:", err)
	if isUsage(err) {
		return ExitSkipped
	}
	return ExitFailed
}

// isUsage recognises cobra's own argument errors (unknown command, wrong
// number of arguments), which are usage errors.
func isUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
