package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestConflictsListedAndExported (issue "Auto-import", conflicts): with
// MinIO's webhook posting to the daemon,
//   - an import-only association: a file changed locally (it stays dirty:
//     nothing exports it) whose object changes keeps both sides, and one
//     whose object is deleted stays;
//   - an association that imports and exports NEW only: a file made here
//     and exported, then changed here (CHANGED is not exported, so it stays
//     dirty deterministically), whose object changes — the conflict copy is
//     exported under its own key with the local content, the original key
//     keeps the repository's version;
//   - ferry hsm state shows each copy and what it is the copy of (text and
//     JSON), and describe lists the conflicts (RecentConflicts).
func TestConflictsListedAndExported(t *testing.T) {
	e := newImportEnv(t, map[string]string{"c/doc.txt": "repo v1", "c/gone.txt": "repo gone v1"})
	ctx := context.Background()
	// The webhook covers both prefixes (the daemon ignores keys no
	// auto-import association covers).
	_, err := e.c.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(e.bucket),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			Id:       aws.String("ferry-all"),
			QueueArn: aws.String("arn:minio:sqs::FERRY:webhook"),
			Events:   []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
		}}},
	})
	if err != nil {
		t.Fatalf("put bucket notification: %v", err)
	}
	out := e.ok("fsx", "create-data-repository-association", "--file-system-id", e.id,
		"--file-system-path", "/out", "--data-repository-path", "s3://"+e.bucket+"/out/",
		"--s3", "AutoImportPolicy={Events=[NEW,CHANGED,DELETED]},AutoExportPolicy={Events=[NEW]}",
		"--query", "Association.AssociationId", "--output", "text")
	outID := strings.TrimSpace(out)
	testutil.Eventually(t, 60*time.Second, outID+" AVAILABLE", func() bool {
		return strings.TrimSpace(e.ok("fsx", "describe-data-repository-associations", "--association-ids", outID,
			"--query", "Associations[0].Lifecycle", "--output", "text")) == "AVAILABLE"
	})

	// Import only: CHANGED and DELETED under local changes.
	if _, err := os.ReadDir(e.path("c")); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"c/doc.txt": "local edit", "c/gone.txt": "local keeps me"} {
		if err := os.WriteFile(e.path(name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.put("c/doc.txt", "repo v2")
	e.del("c/gone.txt")
	docCopy := waitConflictCopy(t, e.path("c"), "doc.txt")
	if b, err := os.ReadFile(docCopy); err != nil || string(b) != "local edit" {
		t.Errorf("conflict copy %s: %q %v, want the local content", docCopy, b, err)
	}
	testutil.Eventually(t, 10*time.Second, "the repository's version under data/c/doc.txt", func() bool {
		b, err := os.ReadFile(e.path("c/doc.txt"))
		return err == nil && string(b) == "repo v2"
	})
	testutil.Eventually(t, 20*time.Second, "the DELETED conflict counted", func() bool {
		return e.metric(`ferry_import_conflicts_total{kind="deleted"}`) == 1
	})
	if b, err := os.ReadFile(e.path("c/gone.txt")); err != nil || string(b) != "local keeps me" {
		t.Errorf("data/c/gone.txt after its object went: %q %v, want the local content kept", b, err)
	}
	checkHSMStateConflict(t, e, docCopy, e.path("c/doc.txt"))
	if st := e.ok("hsm", "state", e.path("c/doc.txt")); strings.Contains(st, "conflict_copy_of") {
		t.Errorf("hsm state of the original shows a conflict mark: %q", st)
	}

	// Import and export (NEW only): the copy is exported.
	orig := filepath.Join(e.mp, "out", "x", "f.txt")
	if err := os.MkdirAll(filepath.Dir(orig), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orig, []byte("made here"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("hsm", "wait", "--timeout", "60s", orig)
	if got := getObject(t, e, "out/x/f.txt"); got != "made here" {
		t.Fatalf("out/x/f.txt after hsm wait: %q, want the file made here", got)
	}
	if err := os.WriteFile(orig, []byte("changed here, not exported"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv.Put(t, e.bucket, "out/x/f.txt", []byte("changed in the bucket"))
	outCopy := waitConflictCopy(t, filepath.Dir(orig), "f.txt")
	e.ok("hsm", "wait", "--timeout", "60s", outCopy)
	key := "out/x/" + filepath.Base(outCopy)
	if got := getObject(t, e, key); got != "changed here, not exported" {
		t.Errorf("the conflict copy's key %s: %q, want the local content", key, got)
	}
	if got := getObject(t, e, "out/x/f.txt"); got != "changed in the bucket" {
		t.Errorf("out/x/f.txt after the conflict: %q, want the repository's version", got)
	}
	if b, err := os.ReadFile(orig); err != nil || string(b) != "changed in the bucket" {
		t.Errorf("%s: %q %v, want the repository's version", orig, b, err)
	}
	checkHSMStateConflict(t, e, outCopy, orig)

	// Describe lists the three conflicts, newest first.
	var fs api.DescribeFileSystemsResponse
	if err := json.Unmarshal([]byte(e.ok("fsx", "describe-file-systems")), &fs); err != nil || len(fs.FileSystems) != 1 {
		t.Fatalf("describe-file-systems: %v", err)
	}
	ai := fs.FileSystems[0].FerryStatus.AutoImport
	if ai == nil {
		t.Fatal("describe-file-systems: no FerryStatus.AutoImport")
	}
	got := map[string]api.ConflictRecord{}
	for _, c := range ai.RecentConflicts {
		got[c.Path] = c
	}
	want := []api.ConflictRecord{
		{Path: e.path("c/doc.txt"), CopyPath: docCopy, Kind: api.ConflictChanged, Key: "in/c/doc.txt"},
		{Path: e.path("c/gone.txt"), Kind: api.ConflictDeleted, Key: "in/c/gone.txt"},
		{Path: orig, CopyPath: outCopy, Kind: api.ConflictChanged, Key: "out/x/f.txt", AssociationId: outID},
	}
	if len(ai.RecentConflicts) != len(want) || ai.Conflicts != 3 {
		t.Errorf("RecentConflicts %+v (Conflicts %d), want 3", ai.RecentConflicts, ai.Conflicts)
	}
	for _, w := range want {
		c, ok := got[w.Path]
		if !ok || c.CopyPath != w.CopyPath || c.Kind != w.Kind || c.Key != w.Key || c.Time.IsZero() ||
			(w.AssociationId != "" && c.AssociationId != w.AssociationId) {
			t.Errorf("RecentConflicts entry of %s: %+v, want %+v", w.Path, c, w)
		}
	}
	if len(ai.RecentConflicts) > 0 && ai.RecentConflicts[0].Path != orig {
		t.Errorf("RecentConflicts[0] = %s, want the newest (%s)", ai.RecentConflicts[0].Path, orig)
	}
	// An association's describe lists its own only.
	var dr api.DescribeDataRepositoryAssociationsResponse
	if err := json.Unmarshal([]byte(e.ok("fsx", "describe-data-repository-associations", "--association-ids", outID)), &dr); err != nil || len(dr.Associations) != 1 {
		t.Fatalf("describe %s: %v", outID, err)
	}
	if st := dr.Associations[0].FerryStatus; st == nil || st.AutoImport == nil || len(st.AutoImport.RecentConflicts) != 1 ||
		st.AutoImport.RecentConflicts[0].CopyPath != outCopy {
		t.Errorf("describe %s FerryStatus %+v, want its one conflict", outID, st)
	}
}

// waitConflictCopy waits for the conflict copy of name in dir and returns
// its path.
func waitConflictCopy(t *testing.T, dir, name string) string {
	t.Helper()
	var cp string
	testutil.Eventually(t, 30*time.Second, "a conflict copy of "+filepath.Join(dir, name), func() bool {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range ents {
			if strings.HasPrefix(de.Name(), name+".ferry-conflict-") {
				cp = filepath.Join(dir, de.Name())
				return true
			}
		}
		return false
	})
	return cp
}

// checkHSMStateConflict checks that ferry hsm state shows cp as the
// conflict copy of orig, in text and in JSON.
func checkHSMStateConflict(t *testing.T, e *importEnv, cp, orig string) {
	t.Helper()
	text := e.ok("hsm", "state", cp)
	if !strings.HasPrefix(text, cp+": (0x") || !strings.Contains(text, ", conflict_copy_of:"+orig+" (CHANGED ") {
		t.Errorf("hsm state of %s: %q, want the flags and conflict_copy_of:%s (CHANGED …)", cp, text, orig)
	}
	var r api.HSMResponse
	if err := json.Unmarshal([]byte(e.ok("hsm", "state", "--output", "json", cp)), &r); err != nil || len(r.Files) != 1 {
		t.Fatalf("hsm state --output json %s: %v %+v", cp, err, r)
	}
	c := r.Files[0].Conflict
	if c == nil || c.Of != orig || c.Kind != api.ConflictChanged || time.Since(c.Time.Time) > 10*time.Minute {
		t.Errorf("hsm state --output json %s: Conflict %+v, want the copy of %s (CHANGED, just now)", cp, c, orig)
	}
}

// getObject returns the body of key in e's bucket ("" when it is absent).
func getObject(t *testing.T, e *importEnv, key string) string {
	t.Helper()
	o, err := e.c.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		t.Logf("get %s: %v", key, err)
		return ""
	}
	defer o.Body.Close()
	b, err := io.ReadAll(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
