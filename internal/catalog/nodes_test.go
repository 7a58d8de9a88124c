package catalog_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestNodeKilled: a node (a child process with its own catalog) registers
// a session, heartbeats it, claims journal entries and an import hint with
// hour-long leases, and is killed with -9. Within its session TTL plus a
// heartbeat period the surviving node's ExpireSessions reaps it, and
// everything it held is claimable at once: nothing waits for the hour.
// On both engines (the SQLite catalog is one file both processes open).
func TestNodeKilled(t *testing.T) {
	if url := os.Getenv("FERRY_CATALOG_NODE_CHILD"); url != "" {
		nodeChild(url)
		return
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			url := "sqlite://" + filepath.Join(t.TempDir(), "catalog.db")
			if engine == "postgres" {
				url = testutil.PostgresDatabase(t)
			}
			nodeKilled(t, url)
		})
	}
}

const nodeTTL = 2 * time.Second

func nodeKilled(t *testing.T, url string) {
	ctx := context.Background()
	c, err := catalog.Open(ctx, url, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all []string
	for i := range 10 {
		p := fmt.Sprintf("d/f%02d", i)
		all = append(all, p)
		if err := c.Append(ctx, catalog.JournalAppend{Path: p, Kind: catalog.KindNew}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.EnqueueHints(ctx, catalog.ImportHint{Source: "minio", Bucket: "b", Key: "k", Kind: catalog.HintCreated}); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterSession(ctx, catalog.Session{NodeID: "survivor", Host: "h"}, nodeTTL); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeKilled$")
	cmd.Env = append(os.Environ(), "FERRY_CATALOG_NODE_CHILD="+url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var claimed []string
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "claimed "); ok {
			claimed = strings.Fields(rest)
			break
		}
	}
	if len(claimed) != 6 { // 5 entries and the hint
		t.Fatalf("child claimed %q", claimed)
	}
	ss, err := c.LiveSessions(ctx)
	if err != nil || len(ss) != 2 {
		t.Fatalf("live sessions with the child running: %+v, %v", ss, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()

	// The survivor heartbeats and reaps, as a daemon's session loop does.
	for {
		if err := c.HeartbeatSession(ctx, "survivor", nodeTTL); err != nil {
			t.Fatal(err)
		}
		gone, err := c.ExpireSessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(gone) == 1 && gone[0].NodeID == "dead" {
			break
		}
		if time.Since(killed) > nodeTTL+2*time.Second {
			t.Fatalf("the killed node's session was not reaped within its TTL (%v) and a heartbeat", nodeTTL)
		}
		time.Sleep(nodeTTL / 10)
	}
	t.Logf("reaped %v after kill -9", time.Since(killed).Round(10*time.Millisecond))
	es, err := c.Claim(ctx, "survivor", 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Path)
	}
	slices.Sort(got)
	if !slices.Equal(got, all) {
		t.Fatalf("survivor claimed %q after the reaping, want all of %q", got, all)
	}
	hs, err := c.ClaimHints(ctx, "survivor", 10, time.Minute)
	if err != nil || len(hs) != 1 {
		t.Fatalf("survivor claimed %d hints, %v; want the dead node's one", len(hs), err)
	}
	if ss, _ := c.LiveSessions(ctx); len(ss) != 1 || ss[0].NodeID != "survivor" {
		t.Fatalf("live sessions after the reaping: %+v", ss)
	}
}

// nodeChild is the node that dies: it claims, says what, and heartbeats
// until it is killed.
func nodeChild(url string) {
	ctx := context.Background()
	c, err := catalog.Open(ctx, url, catalog.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := c.RegisterSession(ctx, catalog.Session{NodeID: "dead", Host: "h", PID: os.Getpid()}, nodeTTL); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	es, err := c.Claim(ctx, "dead", 5, time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	hs, err := c.ClaimHints(ctx, "dead", 1, time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	line := "claimed"
	for _, e := range es {
		line += " " + e.Path
	}
	for _, h := range hs {
		line += " " + h.Bucket + "/" + h.Key
	}
	fmt.Println(line)
	for {
		time.Sleep(nodeTTL / 4)
		c.HeartbeatSession(ctx, "dead", nodeTTL)
	}
}
