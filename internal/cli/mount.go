package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-hpc/ferry/internal/associations"
	"github.com/ferry-hpc/ferry/internal/daemon"
	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/tasks"
)

type mountOpts struct {
	store, catalog, logLevel, metricsAddr string
	eventsListen, eventsToken, eventsSQS  string
	repoCheck, fetchTimeout               time.Duration
	listAhead                             int
	importSweep, sessionTTL               time.Duration
	autoRelease                           float64
	background, debug, noPassthrough      bool
	entryTimeout, attrTimeout, negTimeout time.Duration
	eventsTargetARN                       string
	uid, gid                              string
}

// mountLong is the long help of ferry mount.
const mountLong = `Mount the ferry file system kept in the store directory DIR on MOUNTPOINT.

The mount shows the store's files and directories; every operation goes to
the store below DIR, never outside it. The store's metadata folder (.ferry)
is hidden. The first mount of a store gives it a FileSystemId
(fs- and 17 hex digits, kept in DIR/.ferry/filesystem.json); later mounts
reuse it. The id is printed on standard output once the mount is ready.

By default ferry stays in the foreground until the file system is unmounted
(ferry umount, or SIGINT/SIGTERM, which unmount it cleanly; a busy mount is
detached and the daemon exits when its last open file is closed). With
--background it starts a detached daemon, waits until the mount is ready,
prints the id and exits; the daemon logs to $FERRY_RUNTIME_DIR/<id>.log.

Running daemons register in $FERRY_RUNTIME_DIR (default /run/ferry for root,
else $XDG_RUNTIME_DIR/ferry), each with its control socket <id>.sock (mode
0600) that "ferry fsx" and "ferry hsm" talk to. As root the mount is shared
with every user (allow_other) and the kernel checks permissions
(default_permissions).

Ownership: as root (with CAP_CHOWN) imported files get the owner and group
of their object's x-amz-meta-file-owner/-group headers, and root:root without
them, as on FSx. As an ordinary user (or root without CAP_CHOWN) every
imported file is the mounting user's: objects without owner headers, and
those whose headers name another user or a group the user is not in. --uid
and --gid choose the owner of objects without owner headers (without
CAP_CHOWN only the user's own uid and groups can be given). Without root the
mount is made by fusermount3 (Debian/Ubuntu package fuse3) and only the
mounting user can use it, unless /etc/fuse.conf has user_allow_other.

The daemon reaches the data repositories of its associations with the
standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL_S3, ~/.aws/config), or --profile, --region and
--endpoint-url as for "ferry s3".

Files written under an association with an AutoExportPolicy are exported by
the daemon; what is not exported yet stays in the store's export journal
across unmounts and crashes, and the next mount exports it. Metrics
(Prometheus text: export backlog and lag, bytes and objects exported,
failures by code, lazy import counters) are served on the control socket and,
with --metrics-addr, on a TCP port (a port alone listens on 127.0.0.1 only).

An AVAILABLE association's repository is checked every
--repository-check-interval (one listing of one key); a bucket gone or access
withdrawn makes it MISCONFIGURED, which pauses its import and export until
the cause is gone.

A read of a released file (data still in the repository) waits for the
chunks it needs. When the repository is down (connection refused, a server
that accepts and never answers, a body that stops), each fetch retries with
backoff, every attempt abandoned after min(--fetch-timeout/3, 10s) without a
byte; once the repository has sent nothing for --fetch-timeout (default 60s:
long enough to ride out a server restart or a load balancer failover, short
enough that a job fails within a minute instead of hanging) the read fails
with EIO and the daemon logs the endpoint and the file. The next read tries
again. A reader interrupted meanwhile (Ctrl-C) stops waiting at once. Reads
of data already local, and listings of directories already listed, never
wait on the repository. /metrics shows stalled fetches
(ferry_importer_fetches_stalled).

An association with an AutoImportPolicy is swept every
--import-sweep-interval (default 5m; 0: never): its prefix is listed (1,000
keys per request, at most 20 requests a second, slower while reads need the
repository) and what changed in the directories already listed — new,
overwritten and deleted objects — is applied under the policy, as a bucket
event would be; a file with local changes is never overwritten (its content
is kept as a conflict copy). Directories never listed cost nothing: their
first listing sees the bucket as it is.

Many nodes: every ferry mount of one store directory (on a shared file
system) with one --catalog postgres://USER@HOST/DATABASE serves the same
file system. Each daemon is a node with a session in the catalog, kept
alive by a heartbeat every third of --session-ttl (default 30s); a node
silent for longer (killed, powered off) expires and the other nodes take over
the exports and import events it held. The default SQLite catalog serves
one daemon only: a second mount of the store is refused.

Data repository tasks (ferry fsx create-data-repository-task) run in the
daemon; a task cut short by an unmount runs again at the next mount. With
--auto-release-above F the daemon starts an AUTO_RELEASE_DATA task by itself
when the store's file system is fuller than F, releasing the least recently
used archived files until it is below 80%.

Auto-import: with --events-listen ADDR the daemon serves S3 event
notifications at http://ADDR/events (POST): MinIO's webhook target, Ceph
RGW's HTTP push, Amazon SNS over HTTP. Each event is queued durably in the
catalog before the sender is answered, then applied to the associations that
have an AutoImportPolicy by checking the object (HEAD): a new object appears,
a changed one replaces a clean file's data, a deleted one removes a clean
file. A file with local changes is never lost: when its object changes, the
local content is kept as NAME.ferry-conflict-TIME-N beside it. Events queued
when the daemon stops are applied by the next mount. --events-token TOKEN (or
$FERRY_EVENTS_TOKEN, which keeps the token out of ps) makes every request
carry "Authorization: Bearer TOKEN"; an address beyond 127.0.0.1 is refused
without one. For MinIO:
  MINIO_NOTIFY_WEBHOOK_ENABLE_FERRY=on
  MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY=http://ADDR/events
  MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FERRY=TOKEN
and a bucket notification with the queue arn:minio:sqs::FERRY:webhook.`

func newMountCmd(g *globals) *cobra.Command {
	o := &mountOpts{}
	cmd := &cobra.Command{
		Use:   "mount --store DIR MOUNTPOINT",
		Short: "Mount a ferry file system: a FUSE view of a store directory",
		Long:  mountLong,
		Example: `  ferry mount --store /nvme/ferry /fsx
  ferry mount --background --store /lustre/ferry-store /fsx
  ferry mount --store /nvme/ferry --catalog sqlite:///var/lib/ferry/fsx.db /fsx
  ferry --endpoint-url http://127.0.0.1:9000 mount --background --store /nvme/ferry /fsx
  ferry mount --background --metrics-addr 9100 --store /nvme/ferry /fsx   # curl 127.0.0.1:9100/metrics
  ferry mount --background --fetch-timeout 5m --store /nvme/ferry /fsx   # wait out longer outages
  FERRY_EVENTS_TOKEN=$(openssl rand -hex 32) ferry mount --background --events-listen 0.0.0.0:9010 --store /nvme/ferry /fsx
  ferry umount /fsx`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store directory holding the file system's names and data (required)")
	f.StringVar(&o.catalog, "catalog", "", "catalog URL: sqlite://PATH (default sqlite://DIR/.ferry/catalog.db) or postgres://USER@HOST/DATABASE")
	f.BoolVar(&o.background, "background", false, "run as a detached daemon; return once the mount is ready")
	f.BoolVar(&o.debug, "debug", false, "log every FUSE request and reply (implies --log-level debug)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&o.entryTimeout, "entry-timeout", time.Second, "how long the kernel caches names")
	f.DurationVar(&o.attrTimeout, "attr-timeout", time.Second, "how long the kernel caches attributes")
	f.DurationVar(&o.negTimeout, "negative-timeout", time.Second, "how long the kernel caches failed lookups")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "also serve Prometheus metrics at http://ADDR/metrics (HOST:PORT, or PORT for 127.0.0.1:PORT)")
	f.DurationVar(&o.repoCheck, "repository-check-interval", associations.DefaultAvailableCheckInterval, "how often an AVAILABLE association's repository is checked (0: never)")
	f.DurationVar(&o.fetchTimeout, "fetch-timeout", importer.DefaultFetchTimeout, "how long a read of a released file, or a directory's first listing, waits while the repository sends nothing (refused, hung) before it fails with EIO, e.g. 30s or 5m")
	f.IntVar(&o.listAhead, "list-ahead", importer.DefaultListAhead, "after a directory's first listing, list the subdirectories it found in the background, this many at a time, before anyone looks into them (0: only when looked into)")
	f.DurationVar(&o.importSweep, "import-sweep-interval", importer.DefaultSweepInterval, "how often each auto-import association's prefix is listed to catch changes no event announced, paced so reads come first (0: never)")
	f.DurationVar(&o.sessionTTL, "session-ttl", daemon.DefaultSessionTTL, "how long this node's session in the catalog lives without a heartbeat (sent every third of it); a node silent for longer loses its claimed exports and import events to the other nodes")
	f.Float64Var(&o.autoRelease, "auto-release-above", 0, "start an AUTO_RELEASE_DATA task by itself when the store's file system is fuller than this fraction (0.8–1, e.g. 0.9; 0: never)")
	f.StringVar(&o.eventsTargetARN, "events-target-arn", "", "put a bucket notification configuration sending each auto-import association's S3 events to this SQS queue or SNS topic ARN (MinIO: arn:minio:sqs::ID:webhook); see docs/semantics.md §2")
	f.StringVar(&o.eventsListen, "events-listen", "", "serve S3 event notifications at http://ADDR/events (HOST:PORT, or PORT for 127.0.0.1:PORT) for auto-import")
	f.StringVar(&o.eventsSQS, "events-sqs", "", "long-poll this SQS queue URL for S3 event notifications for auto-import (a message is deleted once its events are queued; AWS_ENDPOINT_URL_SQS for another endpoint)")
	f.StringVar(&o.eventsToken, "events-token", "", "bearer token every event request must carry (default $"+daemon.EventsTokenEnv+"); required when --events-listen is not a loopback address")
	f.StringVar(&o.uid, "uid", "", "owner (numeric uid) of imported files whose objects have no owner header (default: root, or the mounting user without CAP_CHOWN)")
	f.StringVar(&o.gid, "gid", "", "group (numeric gid) of imported files whose objects have no group header (default: root, or the mounting user's group without CAP_CHOWN)")
	f.BoolVar(&o.noPassthrough, "no-passthrough", false, "serve every read and write in the daemon, even where the kernel offers FUSE passthrough")
	for _, n := range []string{"entry-timeout", "attr-timeout", "negative-timeout", "no-passthrough"} {
		f.MarkHidden(n)
	}
	return cmd
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: expected debug, info, warn or error", s)
	}
	return l, nil
}

func runMount(cmd *cobra.Command, g *globals, o *mountOpts, mountpoint string) error {
	if o.store == "" {
		return usageError("--store DIR is required\nSee 'ferry mount --help'.")
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		return usageError("%v", err)
	}
	if o.debug {
		level = slog.LevelDebug
	}
	catalog, err := daemon.ParseCatalog(o.catalog, o.store)
	if err != nil {
		return usageError("%v", err)
	}
	metricsAddr, err := daemon.ParseMetricsAddr(o.metricsAddr)
	if err != nil {
		return usageError("%v", err)
	}
	eventsToken := o.eventsToken
	if !cmd.Flags().Changed("events-token") {
		eventsToken = os.Getenv(daemon.EventsTokenEnv)
	} else if o.eventsListen == "" {
		return usageError("--events-token is given without --events-listen ADDR: it protects the event endpoint, which only --events-listen serves")
	}
	eventsListen, err := daemon.ParseEventsAddr(o.eventsListen, eventsToken)
	if err != nil {
		return usageError("%v", err)
	}
	if err := o.checkDurations(); err != nil {
		return err
	}
	if o.eventsTargetARN != "" {
		if err := associations.ParseTargetARN(o.eventsTargetARN); err != nil {
			return usageError("%v", err)
		}
	}
	uid, err := parseID("--uid", o.uid, "id -u")
	if err != nil {
		return usageError("%v", err)
	}
	gid, err := parseID("--gid", o.gid, "id -g")
	if err != nil {
		return usageError("%v", err)
	}
	repoCheck := o.repoCheck
	if repoCheck == 0 {
		repoCheck = -1 // never
	}
	store, err := filepath.Abs(o.store)
	if err != nil {
		return err
	}
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return err
	}
	if o.background {
		// The daemon is this command again, as the user typed it, without
		// --background: every flag reaches it, those added later too.
		args := withoutBackground(g.args, cmd.Flags())
		id, err := daemon.Background(cmd.Context(), args, g.stderr)
		if err != nil {
			if errors.Is(err, daemon.ErrChildFailed) {
				return &exitError{code: ExitFailed}
			}
			return err
		}
		fmt.Fprintln(g.stdout, id)
		return nil
	}
	logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
	d, err := daemon.Start(daemon.Config{
		Store:      store,
		MountPoint: mp,
		Catalog:    catalog,
		Logger:     logger,
		S3:         g.s3Config(64),
		Version:    Version,

		AvailableCheckInterval: repoCheck,
		FetchTimeout:           o.fetchTimeout,
		ListAhead:              o.listAhead,
		ImportSweepInterval:    o.importSweep,
		SessionTTL:             o.sessionTTL,
		MetricsAddr:            metricsAddr,
		AutoReleaseAbove:       o.autoRelease,
		EventsTargetARN:        o.eventsTargetARN,
		EventsListen:           eventsListen,
		EventsToken:            eventsToken,
		EventsSQS:              o.eventsSQS,
		UID:                    uid,
		GID:                    gid,
		FUSE: fusefs.Options{
			EntryTimeout:    cacheTimeout(o.entryTimeout),
			AttrTimeout:     cacheTimeout(o.attrTimeout),
			NegativeTimeout: cacheTimeout(o.negTimeout),
			NoPassthrough:   o.noPassthrough,
			Debug:           o.debug,
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, d.ID())
	select {
	case <-d.Done():
		return nil
	case <-cmd.Context().Done():
		logger.Info("signal: unmounting", "mountpoint", mp)
		return d.Stop()
	}
}

// cacheTimeout is a kernel cache time for fusefs.Options: a duration of
// 0 or less on the command line means "no caching", which the options
// write -1 (they take 0 as "default").
func cacheTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// checkDurations checks the intervals, the fetch timeout, --list-ahead,
// --session-ttl and the auto-release fraction.
func (o *mountOpts) checkDurations() error {
	if o.repoCheck < 0 {
		return usageError("--repository-check-interval %v is negative: give a duration such as 5m, or 0 for never", o.repoCheck)
	}
	if o.listAhead < 0 || o.listAhead > 64 {
		return usageError("--list-ahead %d: give 0 (list a directory only when looked into) to 64", o.listAhead)
	}
	if o.fetchTimeout < time.Second {
		return usageError("--fetch-timeout %v: give a duration of at least 1s, such as 60s or 5m", o.fetchTimeout)
	}
	if o.importSweep < 0 {
		return usageError("--import-sweep-interval %v is negative: give a duration such as 5m, or 0 for never", o.importSweep)
	}
	if err := daemon.CheckSessionTTL(o.sessionTTL); err != nil {
		return usageError("%v", err)
	}
	if o.autoRelease != 0 && (o.autoRelease <= tasks.DefaultWatermark || o.autoRelease >= 1) {
		return usageError("--auto-release-above %v: give a fraction above %v (the release watermark) and below 1, e.g. 0.9", o.autoRelease, tasks.DefaultWatermark)
	}
	return nil
}

// parseID parses the value of flag, a numeric user or group id; "" is
// nil (not given). hint is the command that prints the caller's own.
func parseID(flag, v, hint string) (*uint32, error) {
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return nil, fmt.Errorf("%s %q: give a numeric id from 0 to 4294967294 (`%s` prints yours)", flag, v, hint)
	}
	id := uint32(n)
	return &id, nil
}

// withoutBackground returns args without --background (and
// --background=VALUE) wherever it appears before "--"; a value given to
// another flag (--store --background) and everything after "--" stay as
// they are. flags are the mount command's (its own and the inherited
// ones), to tell the flags that take a value.
func withoutBackground(args []string, flags *pflag.FlagSet) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a == "--background" || strings.HasPrefix(a, "--background=") {
			continue
		}
		out = append(out, a)
		var f *pflag.Flag
		switch {
		case strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
			f = flags.Lookup(a[2:])
		case len(a) == 2 && a[0] == '-' && a[1] != '-':
			f = flags.ShorthandLookup(a[1:])
		}
		if f != nil && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i]) // the flag's value
		}
	}
	return out
}
