package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL for tests: Debian's server (the postgresql package; scripts/tools.sh
// postgres installs it and test.sh exports FERRY_POSTGRES_BIN), run from a
// temporary directory: initdb with trust authentication, then postgres
// listening on 127.0.0.1 only, on a free port, with its unix socket in that
// directory. The server refuses to run as root, so under root it runs as the
// user postgres (the package creates it).

// Postgres is a running PostgreSQL server.
type Postgres struct {
	Dir  string // the temporary directory (data in Dir/data)
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	dbs  atomic.Int64
	bin  string
	cred *syscall.Credential
}

// PostgresBin finds the directory of the server's binaries: $FERRY_POSTGRES_BIN,
// then the newest /usr/lib/postgresql/*/bin (Debian's layout).
func PostgresBin() (string, error) {
	if d := os.Getenv("FERRY_POSTGRES_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("postgres not found: FERRY_POSTGRES_BIN=%s has no postgres binary (run scripts/tools.sh postgres)", d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("postgres not found: run scripts/tools.sh postgres (installs Debian's postgresql), or set FERRY_POSTGRES_BIN to the directory of its binaries")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartPostgres starts a server in a new temporary directory. Stop stops it
// and removes the directory.
func StartPostgres() (*Postgres, error) {
	bin, err := PostgresBin()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := pgCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ferry-pg-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	p := &Postgres{Dir: dir, log: filepath.Join(dir, "postgres.log")}
	if err := p.start(bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// pgCredential is the user the server runs as: postgres when this process is
// root, else this process's own user (nil).
func pgCredential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, 0, 0, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("postgres: running as root, and the server refuses root, but there is no user postgres to run it as (install Debian's postgresql package: scripts/tools.sh postgres): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func (p *Postgres) start(bin string, cred *syscall.Credential) error {
	data := filepath.Join(p.Dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = p.Dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: initdb: %v: %s", err, tail(string(out)))
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	p.Port, _ = strconv.Atoi(port)
	p.bin, p.cred = bin, cred
	return p.launch()
}

// launch starts the server on p's data and port and waits until it accepts
// connections.
func (p *Postgres) launch() error {
	data, port, cred := filepath.Join(p.Dir, "data"), strconv.Itoa(p.Port), p.cred
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if cred != nil {
		os.Chown(p.log, int(cred.Uid), int(cred.Gid))
	}
	p.cmd = exec.Command(filepath.Join(p.bin, "postgres"), "-D", data, "-p", port,
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+p.Dir,
		"-c", "max_connections=200", "-c", "shared_buffers=64MB")
	p.cmd.Dir = p.Dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Pdeathsig: the server goes when the test binary dies without Stop.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("postgres: start: %w", err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("postgres exited at start: %s", tail(string(b)))
		default:
		}
		if time.Now().After(deadline) {
			p.halt()
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("postgres did not accept connections in 30s: %v: %s", err, tail(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the connection URL of database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// NewDatabase creates an empty database and returns its URL; it is dropped
// when the test ends (the server's own end removes it otherwise).
func (p *Postgres) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("ferry_test_%d_%d", os.Getpid(), p.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return p.URL(name)
}

// Restart stops the server (fast shutdown: every connection is cut) and
// starts it again on the same data and port.
func (p *Postgres) Restart(tb testing.TB) {
	tb.Helper()
	p.halt()
	if err := p.launch(); err != nil {
		tb.Fatal(err)
	}
}

// Stop stops the server (fast shutdown, then SIGKILL after 10 s) and removes
// its directory.
func (p *Postgres) Stop() {
	p.halt()
	os.RemoveAll(p.Dir)
}

func (p *Postgres) halt() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		p.cmd = nil
	}
}

var (
	pgOnce   sync.Once
	pgShared *Postgres
	pgErr    error
)

// SharedPostgres returns one server for the whole test binary (tests take a
// fresh database each with NewDatabase). Packages that use it call RunMain
// from TestMain so the server stops at the end. A missing server skips the
// test, or fails it with CI=true (Need).
func SharedPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	pgOnce.Do(func() { pgShared, pgErr = StartPostgres() })
	if pgErr != nil && strings.HasPrefix(pgErr.Error(), "postgres not found") {
		Need(tb, pgErr)
	}
	if pgErr != nil {
		tb.Fatal(pgErr)
	}
	return pgShared
}

// PostgresDatabase is SharedPostgres(tb).NewDatabase(tb): the URL of a fresh
// database for this test.
func PostgresDatabase(tb testing.TB) string {
	tb.Helper()
	return SharedPostgres(tb).NewDatabase(tb)
}

func stopSharedPostgres() {
	if pgShared != nil {
		pgShared.Stop()
		pgShared = nil
	}
}
