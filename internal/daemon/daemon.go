// Package daemon owns the life of a ferry mount: it opens the store, gives
// a new store its FileSystemId, mounts the FUSE view (internal/fusefs),
// registers the running daemon in the machine's runtime directory, and
// undoes all of it when the mount goes away — by `ferry umount`, a signal,
// or Stop.
//
// Start returns once the kernel has answered the FUSE handshake, so a
// caller (the CLI, or the parent of a --background daemon) can tell the
// user the mount is ready. The control API of the next increment hangs off
// Daemon: it is started after the mount in Start and stopped first in Stop.
package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Config says what to mount where.
type Config struct {
	Store      string // store directory
	MountPoint string
	Catalog    string // catalog URL (ParseCatalog); "" = the default SQLite file
	FUSE       fusefs.Options
	Logger     *slog.Logger
	RuntimeDir string // default RuntimeDir()
}

// Daemon is one running mount.
type Daemon struct {
	cfg      Config
	id       Identity
	created  bool
	store    *store.Store
	fsys     *fusefs.FS
	server   *fuse.Server
	reg      string // registration file
	logFile  string // a --background daemon's log
	log      *slog.Logger
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// Start opens and, on its first mount, initialises the store, mounts it
// and registers the daemon. It returns when the mount is serving.
func Start(cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = RuntimeDir()
	}
	if cfg.Store, err = filepath.Abs(cfg.Store); err != nil {
		return nil, err
	}
	if cfg.MountPoint, err = filepath.Abs(cfg.MountPoint); err != nil {
		return nil, err
	}
	if err := checkPaths(cfg.Store, cfg.MountPoint); err != nil {
		return nil, err
	}
	if cfg.Catalog, err = ParseCatalog(cfg.Catalog, cfg.Store); err != nil {
		return nil, err
	}
	// Modes arrive from the kernel with the caller's umask applied; the
	// daemon must not apply its own on top.
	unix.Umask(0)

	d := &Daemon{cfg: cfg, done: make(chan struct{})}
	if d.store, err = store.Open(cfg.Store); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.store.Close()
		}
	}()
	if d.id, d.created, err = LoadIdentity(d.store); err != nil {
		return nil, err
	}
	d.log = cfg.Logger.With("fs", d.id.FileSystemId)
	if d.created {
		d.log.Info("initialised a new file system", "store", cfg.Store)
	}
	d.logFile = backgroundLog(cfg.RuntimeDir, d.id.FileSystemId)
	// Register before mounting, so two mounts of one store race on the
	// registration, not on the mountpoint.
	if d.reg, err = register(cfg.RuntimeDir, Registration{
		FileSystemId: d.id.FileSystemId,
		Pid:          os.Getpid(),
		Store:        cfg.Store,
		MountPoint:   cfg.MountPoint,
		Catalog:      cfg.Catalog,
		StartTime:    time.Now().UTC(),
		LogFile:      d.logFile,
	}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unregister(d.reg, os.Getpid())
		}
	}()
	opt := cfg.FUSE
	opt.Logger = d.log
	if opt.FsName == "" {
		opt.FsName = "ferry:" + d.id.FileSystemId
	}
	if d.server, d.fsys, err = fusefs.Mount(cfg.MountPoint, d.store, opt); err != nil {
		return nil, err
	}
	d.log.Info("mounted", "store", cfg.Store, "mountpoint", cfg.MountPoint)
	go d.serve()
	if err := d.notifyReady(); err != nil {
		d.Stop()
		return nil, fmt.Errorf("background daemon: %w", err)
	}
	return d, nil
}

// serve waits for the mount to end, however it ends, and cleans up.
func (d *Daemon) serve() {
	d.server.Wait()
	unregister(d.reg, os.Getpid())
	d.store.Close()
	d.log.Info("unmounted", "mountpoint", d.cfg.MountPoint)
	close(d.done)
}

// checkPaths refuses a mountpoint inside the store: the daemon would look
// up its own mount through the store and wait for itself. Mounting over the
// store directory itself works (the daemon holds the store open from
// before the mount) and hides the raw store from users.
func checkPaths(st, mp string) error {
	for _, p := range []struct{ what, path string }{{"store", st}, {"mountpoint", mp}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("%s: %w", p.what, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s %s is not a directory", p.what, p.path)
		}
	}
	if strings.HasPrefix(mp, st+"/") {
		return fmt.Errorf("mountpoint %s is inside the store %s; choose a directory outside it (or the store directory itself)", mp, st)
	}
	return nil
}

// ID is the file system's FileSystemId.
func (d *Daemon) ID() string { return d.id.FileSystemId }

// Created reports whether this mount initialised the store.
func (d *Daemon) Created() bool { return d.created }

// MountPoint is the absolute mountpoint.
func (d *Daemon) MountPoint() string { return d.cfg.MountPoint }

// FS is the mounted file system (its counters, for tests and metrics).
func (d *Daemon) FS() *fusefs.FS { return d.fsys }

// Done is closed when the mount has gone away and the daemon cleaned up.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Stop unmounts and waits for the daemon to finish. If files are still
// open under the mount, it detaches the mount instead (MNT_DETACH): the
// name disappears at once, open files keep working, and the daemon ends
// when the last of them is closed.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		err := Unmount(d.cfg.MountPoint, false)
		if errors.Is(err, ErrBusy) {
			d.log.Warn("mount busy: detaching it; the daemon exits when the last open file is closed", "mountpoint", d.cfg.MountPoint)
			err = Unmount(d.cfg.MountPoint, true)
		}
		if err != nil && !errors.Is(err, ErrNotMounted) {
			d.stopErr = err
			return
		}
		<-d.done
	})
	return d.stopErr
}
