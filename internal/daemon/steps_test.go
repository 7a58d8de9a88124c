package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

var errInjected = errors.New("injected start failure")

// failAt is a Config.StepHook that fails the start after the step name.
func failAt(name string) func(string) error {
	return func(step string) error {
		if step == name {
			return fmt.Errorf("%s: %w", step, errInjected)
		}
		return nil
	}
}

// TestFailedStartLeavesNothing makes each start step fail in turn (through
// Config.StepHook, after the step did its work) and checks that the
// failed start undid everything the steps so far started: no file
// descriptor and no goroutine more than before, nothing listening on the
// control socket or the --metrics-addr and --events-listen ports, no FUSE
// mount, no registration, the running marker as it was. A start and a stop, which
// run the same closers, are held to the same.
func TestFailedStartLeavesNothing(t *testing.T) {
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	srv.Client(t) // sets the credentials in the environment
	st, mp, rt := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	cfg := Config{Store: st, MountPoint: mp, RuntimeDir: rt, MetricsAddr: freeAddr(t),
		EventsListen: freeAddr(t), EventsToken: "token", ImportSweepInterval: time.Hour,
		S3: s3x.Config{EndpointURL: srv.Endpoint, MaxAttempts: 2}}
	// A first start and stop: what a process keeps once it has run a
	// daemon (the netpoller's descriptors, the runtime's workers) is in
	// every baseline after it.
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	l := &leakCheck{t: t, st: st, mp: mp, rt: rt, metrics: cfg.MetricsAddr, events: cfg.EventsListen}
	var names []string
	for _, s := range (&Daemon{}).steps() {
		names = append(names, s.name)
	}
	for _, name := range names {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			l.t = t
			before := l.snapshot()
			c := cfg
			c.StepHook = failAt(name)
			if d, err := Start(c); !errors.Is(err, errInjected) {
				if err == nil {
					d.Stop()
				}
				t.Fatalf("start failing after %s: %v", name, err)
			}
			l.nothingLeft(before)
		})
	}
	t.Run("stop", func(t *testing.T) {
		l.t = t
		before := l.snapshot()
		d, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		l.nothingLeft(before)
	})
	// A step that fails by itself: the --metrics-addr port is taken.
	t.Run("metrics_port_taken", func(t *testing.T) {
		l.t = t
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		before := l.snapshot()
		c := cfg
		c.MetricsAddr = busy.Addr().String()
		if _, err := Start(c); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
			t.Fatalf("start with a taken port: %v", err)
		}
		l.nothingLeft(before)
	})
	// The same with the --events-listen port.
	t.Run("events_port_taken", func(t *testing.T) {
		l.t = t
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		before := l.snapshot()
		c := cfg
		c.EventsListen = busy.Addr().String()
		if _, err := Start(c); err == nil || !strings.Contains(err.Error(), "--events-listen") {
			t.Fatalf("start with a taken port: %v", err)
		}
		l.nothingLeft(before)
	})
}

// TestFailedStartKeepsCrashedBoot: a start that fails before it queued the
// export task of a crashed boot leaves that boot's id in the running
// marker, so the next start still queues it.
func TestFailedStartKeepsCrashedBoot(t *testing.T) {
	testutil.NeedFUSE(t)
	st, mp, rt := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	cfg := Config{Store: st, MountPoint: mp, RuntimeDir: rt}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Stop()
	meta := filepath.Join(st, ".ferry")
	const crashed = "00000000-1111-2222-3333-444444444444"
	if err := os.WriteFile(runningMarker(meta, mp), []byte(crashed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"running marker", "catalog", "tasks"} {
		cfg.StepHook = failAt(step)
		if _, err := Start(cfg); !errors.Is(err, errInjected) {
			t.Fatalf("start failing after %s: %v", step, err)
		}
		if b, err := os.ReadFile(runningMarker(meta, mp)); err != nil || strings.TrimSpace(string(b)) != crashed {
			t.Fatalf("marker after a start failing after %s: %q %v, want the crashed boot's id", step, b, err)
		}
	}
	// Without an exporting association there is nothing to recover: the
	// unclean boot step settles it, and the marker goes with the stop.
	cfg.StepHook = failAt("unclean boot")
	if _, err := Start(cfg); !errors.Is(err, errInjected) {
		t.Fatal(err)
	}
	if _, err := os.Stat(runningMarker(meta, mp)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker after the unclean boot was settled: %v", err)
	}
}

// leakCheck compares what a process holds before and after a start.
type leakCheck struct {
	t          *testing.T
	st, mp, rt string
	metrics    string // --metrics-addr
	events     string // --events-listen
}

type snapshot struct {
	fds        map[string]string // descriptor → what it is
	goroutines map[string]string // id → stack
}

func (l *leakCheck) snapshot() snapshot {
	return snapshot{fds: openFDs(l.t), goroutines: goroutineStacks()}
}

// nothingLeft waits (up to 10 s: goroutines end after their closers
// returned) until the process holds no descriptor and no goroutine that
// was not there before, then checks sockets, mounts, the runtime
// directory and the running marker.
func (l *leakCheck) nothingLeft(before snapshot) {
	t := l.t
	t.Helper()
	var fds, gs []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		fds, gs = nil, nil
		for fd, what := range openFDs(t) {
			if _, ok := before.fds[fd]; !ok {
				fds = append(fds, fd+" → "+what)
			}
		}
		for id, stack := range goroutineStacks() {
			if _, ok := before.goroutines[id]; !ok {
				gs = append(gs, stack)
			}
		}
		if (len(fds) == 0 && len(gs) == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(fds) > 0 {
		slices.Sort(fds)
		t.Errorf("descriptors left open:\n%s", strings.Join(fds, "\n"))
	}
	if len(gs) > 0 {
		t.Errorf("%d goroutines left running:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
	if m, ok, err := mounts.Mounted(l.mp); err != nil || ok {
		t.Errorf("mount left on %s: %+v (%v)", l.mp, m, err)
	}
	if ls := unixListeners(t, l.rt); len(ls) > 0 {
		t.Errorf("Unix sockets left listening: %v", ls)
	}
	if tcpListening(t, l.metrics) {
		t.Errorf("something still listens on the metrics address %s", l.metrics)
	}
	if tcpListening(t, l.events) {
		t.Errorf("something still listens on the events address %s", l.events)
	}
	if ents, _ := os.ReadDir(l.rt); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("runtime directory keeps %v", names)
	}
	if ms, _ := filepath.Glob(filepath.Join(l.st, ".ferry", "running.*")); len(ms) > 0 {
		t.Errorf("running marker left: %v", ms)
	}
	l.noSession()
}

// noSession checks that no node's session is left in the store's catalog
// (a failed start ends the session it registered), and that the catalog
// is not locked: this test opens it, as the next daemon would.
func (l *leakCheck) noSession() {
	t := l.t
	u, err := ParseCatalog("", l.st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(strings.TrimPrefix(u, "sqlite://")); errors.Is(err, os.ErrNotExist) {
		return // the failed start never made it
	}
	unlock, err := lockSQLite(u, l.st, l.mp)
	if err != nil {
		t.Fatalf("catalog left locked: %v", err)
	}
	defer unlock()
	cat, err := catalog.Open(context.Background(), u, catalog.Options{StoreRoot: l.st})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if ss, err := cat.LiveSessions(context.Background()); err != nil || len(ss) > 0 {
		t.Errorf("sessions left: %+v %v", ss, err)
	}
}

// openFDs lists the process's descriptors with what they refer to.
func openFDs(t *testing.T) map[string]string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		out[e.Name()] = target
	}
	return out
}

// goroutineStacks returns every goroutine's stack by goroutine id.
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		// goroutine 42 [running]:
		if f := strings.Fields(g); len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}

// unixListeners lists the listening Unix sockets bound under dir
// (/proc/net/unix: Num RefCount Protocol Flags Type St Inode Path; flag
// 00010000 is __SO_ACCEPTCON, a listening socket).
func unixListeners(t *testing.T, dir string) []string {
	b, err := os.ReadFile("/proc/self/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[7], dir+"/") {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&0x10000 != 0 {
			out = append(out, f[7])
		}
	}
	return out
}

// tcpListening reports whether a socket listens on addr (127.0.0.1:port),
// from /proc/net/tcp (state 0A is LISTEN).
func tcpListening(t *testing.T, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf("0100007F:%04X", p)
	b, err := os.ReadFile("/proc/self/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && f[1] == want && f[3] == "0A" {
			return true
		}
	}
	return false
}

// freeAddr is a 127.0.0.1 address nothing listens on now.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
