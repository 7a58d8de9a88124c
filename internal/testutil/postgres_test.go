package testutil

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPostgres starts a server of its own, uses a fresh database, and stops
// it: no process and no directory are left.
func TestPostgres(t *testing.T) {
	if _, err := PostgresBin(); err != nil {
		Need(t, err)
	}
	p, err := StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			p.Stop()
		}
	}()
	url := p.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatal(one, err)
	}
	var listen string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Fatalf("listen_addresses %q, %v", listen, err)
	}
	conn.Close(ctx)
	pid := p.cmd.Process.Pid
	p.Stop()
	stopped = true
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postgres %d still running after Stop", pid)
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s left behind: %v", p.Dir, err)
	}
}
