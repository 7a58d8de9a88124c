package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// A daemon started with no credentials at all — an empty HOME, no AWS_*
// variables, an instance metadata service that refuses connections (on
// loopback: nothing leaves the machine) — mounts, and serves an
// association created with --no-sign-request on a public bucket: listing
// and reads through the mount, describe showing FerryRepositoryAccess. An
// association without the flag in the same daemon turns MISCONFIGURED
// within seconds, its message naming the credential chain and
// --no-sign-request. An export policy with --no-sign-request is refused
// at create, and `ferry --no-sign-request mount` is refused with the fix.
func TestPublicMountWithoutCredentials(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	pub := srv.Bucket(t)
	srv.PublicRead(t, pub)
	big := make([]byte, 5<<20+123)
	rand.Read(big)
	srv.Put(t, pub, "ExtData/HEMCO/a.nc", []byte("emissions"))
	srv.Put(t, pub, "ExtData/HEMCO/big.nc", big)
	srv.Put(t, pub, "ExtData/CHEM_INPUTS/b.nc", []byte("chemistry"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	imds := ln.Addr().String()
	ln.Close()

	d := newDaemon(t, srv, t.TempDir())
	d.bareEnv = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://" + imds}
	d.extraArgs = []string{"--endpoint-url", srv.Endpoint}
	d.mount()

	out := d.ok("fsx", "create-data-repository-association", "--file-system-id", d.id,
		"--file-system-path", "/ExtData", "--data-repository-path", "s3://"+pub+"/ExtData", "--no-sign-request",
		"--s3", "AutoImportPolicy={Events=[NEW,CHANGED,DELETED]}")
	var cr api.CreateDataRepositoryAssociationResponse
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.Association == nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	id := cr.Association.AssociationId
	var desc string
	testutil.Eventually(t, 60*time.Second, id+" AVAILABLE", func() bool {
		desc = d.ok("fsx", "describe-data-repository-associations", "--association-ids", id)
		var dr api.DescribeDataRepositoryAssociationsResponse
		return json.Unmarshal([]byte(desc), &dr) == nil && len(dr.Associations) == 1 && dr.Associations[0].Lifecycle == api.LifecycleAvailable
	})
	if !strings.Contains(desc, `"FerryRepositoryAccess": {`) || !strings.Contains(desc, `"Unsigned": true`) {
		t.Errorf("describe does not show FerryRepositoryAccess:\n%s", desc)
	}
	ents, err := os.ReadDir(filepath.Join(d.mp, "ExtData"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if err != nil || !slices.Equal(names, []string{"CHEM_INPUTS", "HEMCO"}) {
		t.Errorf("ls ExtData: %v %v", names, err)
	}
	for rel, want := range map[string][]byte{"ExtData/HEMCO/a.nc": []byte("emissions"), "ExtData/HEMCO/big.nc": big, "ExtData/CHEM_INPUTS/b.nc": []byte("chemistry")} {
		got, err := os.ReadFile(filepath.Join(d.mp, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read %s through the mount: %d bytes, %v (want %d)", rel, len(got), err, len(want))
		}
	}

	// Without --no-sign-request the same daemon has no credentials to use.
	out = d.ok("fsx", "create-data-repository-association", "--file-system-id", d.id,
		"--file-system-path", "/signed", "--data-repository-path", "s3://"+pub+"/other")
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.Association == nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	start := time.Now()
	var msg string
	testutil.Eventually(t, 30*time.Second, "the signed association MISCONFIGURED", func() bool {
		var dr api.DescribeDataRepositoryAssociationsResponse
		out := d.ok("fsx", "describe-data-repository-associations", "--association-ids", cr.Association.AssociationId)
		if json.Unmarshal([]byte(out), &dr) != nil || len(dr.Associations) != 1 || dr.Associations[0].Lifecycle != api.LifecycleMisconfigured {
			return false
		}
		msg = dr.Associations[0].FailureDetails.Message
		return true
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the signed association took %v to turn MISCONFIGURED", took)
	}
	for _, want := range []string{"no AWS credentials found", "--no-sign-request"} {
		if !strings.Contains(msg, want) {
			t.Errorf("FailureDetails %q does not name %q", msg, want)
		}
	}

	r := d.run("fsx", "create-data-repository-association", "--file-system-id", d.id,
		"--file-system-path", "/pubout", "--data-repository-path", "s3://"+pub+"/out", "--no-sign-request",
		"--s3", "AutoExportPolicy={Events=[NEW]}")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot export") || !strings.Contains(r.stderr, "drop the AutoExportPolicy") {
		t.Errorf("create with an export policy and --no-sign-request: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mp := t.TempDir()
	cmd := exec.CommandContext(ctx, ferryBin, "--no-sign-request", "mount", "--store", t.TempDir(), mp)
	cmd.Env = append(d.env(), "FERRY_RUNTIME_DIR="+t.TempDir())
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "create-data-repository-association") {
		t.Errorf("ferry --no-sign-request mount: %v\n%s", err, b)
	}
}
