package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
)

// restoreSummary is the JSON of ferry hsm restore --from-dryrun|--files-from
// --output json.
type restoreSummary struct {
	Source            string
	Files             int
	IgnoredLines      int
	Restored          int64
	RestoredBytes     int64
	AlreadyLocal      int64
	AlreadyLocalBytes int64
	Missing           []string
	Failed            []struct{ Path, Error string }
	ElapsedSeconds    float64
}

// bytesFetched reads ferry_importer_bytes_fetched_total from the daemon.
func (m *mountEnv) bytesFetched() int64 {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	text, err := api.NewClient(filepath.Join(m.rt, m.id+".sock")).Metrics(ctx)
	if err != nil {
		m.t.Fatalf("metrics: %v", err)
	}
	g := regexp.MustCompile(`(?m)^ferry_importer_bytes_fetched_total (\S+)$`).FindStringSubmatch(text)
	if g == nil {
		m.t.Fatalf("no ferry_importer_bytes_fetched_total in:\n%s", text)
	}
	v, err := strconv.ParseFloat(g[1], 64)
	if err != nil {
		m.t.Fatal(err)
	}
	return int64(v)
}

// ferryIn runs ferry with stdin.
func (m *mountEnv) ferryIn(stdin string, args ...string) result {
	m.t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = m.env()
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(m.t, cmd)
}

// ferry hsm restore --from-dryrun and --files-from on a real mount: exactly
// the files listed are fetched (the bytes the daemon fetched are theirs and
// no more), files already local cost nothing, files the repository lacks
// are listed with exit status 1, and paths map through --root.
func TestHsmRestoreFromDryrun(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	objs := map[string][]byte{
		"ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_NO_2019.nc":  randBytes(300_000),
		"ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_CO_2019.nc":  randBytes(200_000), // read before: local
		"ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_SO2_2019.nc": randBytes(50_000),  // not in the log
		"ExtData/CHEM_INPUTS/FAST_JX/v2024-05/FJX_j2j.dat":  randBytes(7_000),
		"ExtData/GEOS_4x5/MERRA2/2019/07/A1.4x5.nc4":        randBytes(3 << 20),
		"ExtData/HEMCO/GONE/v1/gone.nc":                     randBytes(10_000), // its object goes
	}
	for k, b := range objs {
		m.srv.Put(t, bucket, k, b)
	}
	a, r := m.create("/ExtData", "s3://"+bucket+"/ExtData")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	mp := m.mp
	at := func(k string) string { return filepath.Join(mp, k) }
	// One file read through the mount: local before the restore.
	if b, err := os.ReadFile(at("ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_CO_2019.nc")); err != nil || len(b) != 200_000 {
		t.Fatalf("read: %d %v", len(b), err)
	}
	m.waitHSMState(at("ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_CO_2019.nc"), "(0x00000009) exists archived")
	// A stub whose object is then deleted behind the mount's back.
	if _, err := os.Stat(at("ExtData/HEMCO/GONE/v1/gone.nc")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.srv.Client(t).S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("ExtData/HEMCO/GONE/v1/gone.nc")}); err != nil {
		t.Fatal(err)
	}

	log := filepath.Join(t.TempDir(), "log.dryrun")
	const h = "/home/ubuntu/ExtData/"
	writeFile(t, log, []byte(strings.Join([]string{
		"!!! STARTING GEOS-Chem DRY-RUN",
		"HEMCO: Opening ./Restarts/GEOSChem.Restart.20190701_0000z.nc4",
		"FAST-JX (RD_JS_JX): Opening " + h + "CHEM_INPUTS//FAST_JX/v2024-05/FJX_j2j.dat",
		"HEMCO: Opening " + h + "HEMCO/CEDS/v2024-06/2019/CEDS_NO_2019.nc",
		"HEMCO: Opening " + h + "HEMCO/CEDS/v2024-06/2019/CEDS_CO_2019.nc",
		"HEMCO: Opening " + h + "GEOS_4x5/MERRA2/2019/07/A1.4x5.nc4",
		"HEMCO: REQUIRED FILE NOT FOUND " + h + "HEMCO/NOPE/v1/nope.nc",
		"HEMCO: Opening " + h + "HEMCO/GONE/v1/gone.nc",
		"---> DATE: 2019/07/01  UTC: 01:00",
		"HEMCO: Opening " + h + "HEMCO/CEDS/v2024-06/2019/CEDS_NO_2019.nc",
		// Already under the mount: taken as it is (the same file as above).
		"HEMCO: Opening " + at("ExtData/GEOS_4x5/MERRA2/2019/07/A1.4x5.nc4"),
		"!!! END OF GEOS-Chem DRY-RUN",
	}, "\n")+"\n"))

	// Without --root the log's paths map nowhere: nothing is fetched.
	before := m.bytesFetched()
	r = m.ferry("", "hsm", "restore", "--from-dryrun", log)
	if r.code != 2 || !strings.Contains(r.stderr, "give --root DIR") || !strings.Contains(r.stderr, "nothing was restored") {
		t.Errorf("no --root: exit %d\n%s", r.code, r.stderr)
	}
	r = m.ferry("", "hsm", "restore", "--from-dryrun", log, "--root", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "is not under a running ferry mount") {
		t.Errorf("--root outside the mount: exit %d\n%s", r.code, r.stderr)
	}
	if n := m.bytesFetched(); n != before {
		t.Errorf("refused runs fetched %d bytes", n-before)
	}

	r = m.ferry("", "hsm", "restore", "--from-dryrun", log, "--root", mp, "--parallel", "3", "--output", "json")
	if r.code != 1 {
		t.Fatalf("restore --from-dryrun: exit %d (want 1: two files missing)\n%s%s", r.code, r.stdout, r.stderr)
	}
	var s restoreSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	fetched := []string{"ExtData/CHEM_INPUTS/FAST_JX/v2024-05/FJX_j2j.dat", "ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_NO_2019.nc", "ExtData/GEOS_4x5/MERRA2/2019/07/A1.4x5.nc4"}
	var want int64
	for _, k := range fetched {
		want += int64(len(objs[k]))
	}
	sort.Strings(s.Missing)
	if s.Files != 6 || s.IgnoredLines != 1 || s.Restored != 3 || s.RestoredBytes != want || s.AlreadyLocal != 1 || s.AlreadyLocalBytes != 200_000 ||
		len(s.Failed) != 0 || strings.Join(s.Missing, " ") != at("ExtData/HEMCO/GONE/v1/gone.nc")+" "+at("ExtData/HEMCO/NOPE/v1/nope.nc") {
		t.Errorf("summary: %+v (want 6 files, 1 ignored, 3 restored, %d bytes, 1 local, missing gone.nc and nope.nc)\n%s", s, want, r.stderr)
	}
	// Exactly those bytes came from the repository.
	if n := m.bytesFetched() - before; n != want {
		t.Errorf("the daemon fetched %d bytes, want %d (the three files)", n, want)
	}
	for _, k := range fetched {
		m.waitHSMState(at(k), "(0x00000009) exists archived")
	}
	so2 := at("ExtData/HEMCO/CEDS/v2024-06/2019/CEDS_SO2_2019.nc")
	if out := m.ok("hsm", "state", so2); out != so2+": (0x0000000d) released exists archived\n" {
		t.Errorf("a file not in the log was restored: %q", out)
	}

	// Again, in text: everything present is local now (no fetch); the
	// missing files are listed on stderr.
	before = m.bytesFetched()
	r = m.ferry("", "hsm", "restore", "--from-dryrun", log, "--root", mp)
	if r.code != 1 || !strings.Contains(r.stderr, "ferry hsm restore: not in the repository: "+at("ExtData/HEMCO/NOPE/v1/nope.nc")+"\n") ||
		!strings.Contains(r.stdout, "6 files: 0 restored (0 Bytes) in ") || !strings.Contains(r.stdout, ", 4 already local (") ||
		!strings.Contains(r.stdout, ", 2 not in the repository; 1 log line outside ExtData/ ignored\n") {
		t.Errorf("second run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := m.bytesFetched() - before; n != 0 {
		t.Errorf("second run fetched %d bytes", n)
	}

	// --files-from - : a plain list on stdin, comments and blank lines
	// skipped, --root for the path outside the mount.
	list := "# inputs\n\n" + so2 + "\n/scratch/ExtData/CHEM_INPUTS/FAST_JX/v2024-05/FJX_j2j.dat\n"
	before = m.bytesFetched()
	r = m.ferryIn(list, "hsm", "restore", "--files-from", "-", "--root", mp)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "2 files: 1 restored (48.8 KiB) in ") || !strings.Contains(r.stdout, ", 1 already local (6.8 KiB)") {
		t.Errorf("--files-from -: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := m.bytesFetched() - before; n != 50_000 {
		t.Errorf("--files-from fetched %d bytes, want 50000", n)
	}
	m.waitHSMState(so2, "(0x00000009) exists archived")
	// A path outside every mount with no ExtData component cannot map.
	r = m.ferryIn("/etc/hostname\n", "hsm", "restore", "--files-from", "-", "--root", mp)
	if r.code != 2 || !strings.Contains(r.stderr, "/etc/hostname is not under a running ferry mount and has no ExtData/ component") {
		t.Errorf("--files-from outside: exit %d\n%s", r.code, r.stderr)
	}
	// Flags that do not go together.
	for _, args := range [][]string{
		{"--from-dryrun", log, "--files-from", "-"},
		{"--from-dryrun", log, at("ExtData")},
		{"-r", "--files-from", "-"},
		{"--root", mp, at("ExtData")},
		{},
	} {
		if r := m.ferry("", append([]string{"hsm", "restore"}, args...)...); r.code != 2 {
			t.Errorf("hsm restore %q: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}
