package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/mounts"
)

// The fixture is shaped like `gcclassic --dryrun` output: HEMCO, FAST-JX,
// GEOS-Chem and old-style "- READ_X: Reading" lines, found and missing
// files, duplicates, doubled slashes, run-directory files and a verbose
// line that is not a file line.
func TestParseDryrunLogFixture(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "log.dryrun"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseDryrunLog(f)
	if err != nil {
		t.Fatal(err)
	}
	const h = "/home/ubuntu/ExtData/"
	want := []string{
		h + "CHEM_INPUTS/FAST_JX/v2024-05/FJX_spec.dat",
		h + "CHEM_INPUTS/FAST_JX/v2024-05/FJX_j2j.dat",
		h + "CHEM_INPUTS/FAST_JX/v2024-05/jv_spec_aod.dat",
		h + "CHEM_INPUTS/FAST_JX/v2024-05/jv_spec_mie.dat",
		h + "CHEM_INPUTS/TOMS_SBUV/v2016-11/TOMS_O3col_2019.geos.4x5.bpch",
		h + "HEMCO/MASKS/v2018-09/CEDS_MASK.geos.4x5.nc",
		h + "HEMCO/CEDS/v2024-06/2019/CEDS_NO_0.5x0.625_2019.nc",
		h + "HEMCO/CEDS/v2024-06/2019/CEDS_CO_0.5x0.625_2019.nc",
		h + "HEMCO/MEGAN/v2021-12/MEGAN2.1_EF.geos.025x03125.nc",
		h + "HEMCO/VOLCANO/v2021-09/2019/07/so2_volcanic_emissions_Carns.20190701.rc",
		h + "GEOS_4x5/MERRA2/2015/01/MERRA2.2015.CN.4x5.nc4",
		h + "GEOS_4x5/MERRA2/2019/07/MERRA2.20190701.A1.4x5.nc4",
		h + "GEOS_4x5/MERRA2/2019/07/MERRA2.20190701.A3cld.4x5.nc4",
		h + "GEOS_4x5/MERRA2/2019/07/MERRA2.20190701.I3.4x5.nc4",
		h + "GEOS_4x5/MERRA2/2019/07/MERRA2.20190702.I3.4x5.nc4",
		h + "CHEM_INPUTS/Linoz/v2010-02/Linoz_March2007.dat",
	}
	if strings.Join(got.Paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("paths:\ngot:\n  %s\nwant:\n  %s", strings.Join(got.Paths, "\n  "), strings.Join(want, "\n  "))
	}
	// 24 file lines; ignored: geoschem_config.yml, the two restarts, an
	// output file of the run directory, and ExtData2 (not an ExtData
	// component).
	if got.Lines != 24 || got.Ignored != 5 {
		t.Errorf("lines %d, ignored %d; want 24, 5", got.Lines, got.Ignored)
	}
}

func TestParseDryrunLogLines(t *testing.T) {
	for _, c := range []struct {
		name, line string
		want       string // "" = no path
	}{
		{"hemco opening", "HEMCO: Opening /d/ExtData/HEMCO/a.nc", "/d/ExtData/HEMCO/a.nc"},
		{"not found", "HEMCO: REQUIRED FILE NOT FOUND /d/ExtData/HEMCO/b.nc", "/d/ExtData/HEMCO/b.nc"},
		{"case", "linoz: reading /d/ExtData/x.dat", "/d/ExtData/x.dat"},
		{"file not found, any prefix", "  + file not found: /d/ExtData/y.nc", "/d/ExtData/y.nc"},
		{"crlf", "HEMCO: Opening /d/ExtData/c.nc\r", "/d/ExtData/c.nc"},
		{"tabs and trailing blanks", "HEMCO:\tOpening\t/d/ExtData/e.nc  ", ""}, // no ": Opening"
		{"doubled slashes anywhere", "HEMCO: Opening //d//ExtData///CHEM_INPUTS//f.dat", "/d/ExtData/CHEM_INPUTS/f.dat"},
		{"relative ExtData", "HEMCO: Opening ExtData/HEMCO/r.nc", "ExtData/HEMCO/r.nc"},
		{"template taken literally", "HEMCO: REQUIRED FILE NOT FOUND /d/ExtData/HEMCO/X/$YYYY/x_$YYYY$MM.nc", "/d/ExtData/HEMCO/X/$YYYY/x_$YYYY$MM.nc"},
		{"ExtData as a file name", "HEMCO: Opening /d/ExtData", ""},
		{"ExtData suffix is not a component", "HEMCO: Opening /d/MyExtData/a.nc", ""},
		{"ExtData prefix is not a component", "HEMCO: Opening /d/ExtData_old/a.nc", ""},
		{"second ExtData component", "HEMCO: Opening /d/xExtData/ExtData/a.nc", "/d/xExtData/ExtData/a.nc"},
		{"no path", "HEMCO: Opening", ""},
		{"other line", "---> DATE: 2019/07/01  UTC: 00:00", ""},
		{"verbose line", " - Opening file: /d/ExtData/v.nc", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDryrunLog(strings.NewReader(c.line + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			var p string
			if len(got.Paths) > 0 {
				p = got.Paths[0]
			}
			if p != c.want || len(got.Paths) > 1 {
				t.Errorf("%q: got %q, want %q", c.line, got.Paths, c.want)
			}
		})
	}
}

func TestParseDryrunLogTooLong(t *testing.T) {
	_, err := parseDryrunLog(strings.NewReader("HEMCO: Opening /ExtData/" + strings.Repeat("x", maxListLine+1)))
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a huge line: %v", err)
	}
}

func TestParseFileList(t *testing.T) {
	in := "# inputs of run 42\n\n/fsx/ExtData/a.nc\n  /fsx/ExtData/b.nc  \r\n#/fsx/ExtData/commented.nc\n/fsx//ExtData/a.nc\nrel/x.nc\n"
	got, err := parseFileList(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/fsx/ExtData/a.nc", "/fsx/ExtData/b.nc", "rel/x.nc"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Mapping onto mounts, with a registry of two mounts (no daemon needed:
// the mapper only reads mount points).
func TestPathMapper(t *testing.T) {
	fsx := t.TempDir()
	other := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(fsx, link); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(fsx, "ExtData/HEMCO"), 0o755); err != nil {
		t.Fatal(err)
	}
	regs := []mounts.Registration{{FileSystemId: "fs-1", MountPoint: fsx}, {FileSystemId: "fs-2", MountPoint: other}}

	noRoot, err := newPathMapper(regs, "")
	if err != nil {
		t.Fatal(err)
	}
	withRoot, err := newPathMapper(regs, link) // a symlink to the mount
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		m       *pathMapper
		in      string
		want    string
		wantErr string
	}{
		{"under a mount", noRoot, fsx + "/ExtData/HEMCO/a.nc", fsx + "/ExtData/HEMCO/a.nc", ""},
		{"under a mount, --root ignored", withRoot, other + "/ExtData/a.nc", other + "/ExtData/a.nc", ""},
		{"no ExtData under a mount", noRoot, other + "/x/y.nc", other + "/x/y.nc", ""},
		{"through a symlink, not yet existing", noRoot, link + "/ExtData/HEMCO/new/b.nc", fsx + "/ExtData/HEMCO/new/b.nc", ""},
		{"--root", withRoot, "/home/ubuntu/ExtData/HEMCO/c.nc", fsx + "/ExtData/HEMCO/c.nc", ""},
		{"--root, first ExtData", withRoot, "/data/ExtData/HEMCO/ExtData/d.nc", fsx + "/ExtData/HEMCO/ExtData/d.nc", ""},
		{"no --root", noRoot, "/home/ubuntu/ExtData/HEMCO/c.nc", "", "give --root DIR to read it as DIR/ExtData/HEMCO/c.nc"},
		{"no ExtData, not under a mount", withRoot, "/home/ubuntu/other/c.nc", "", "has no ExtData/ component"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.m.mapPath(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("%s: got %q, %v; want error with %q", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("%s: got %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
	// Two spellings of one file are restored once; one bad path stops all.
	got, err := withRoot.mapPaths([]string{"/a/ExtData/x.nc", fsx + "/ExtData/x.nc", "/b//ExtData/x.nc"})
	if err != nil || len(got) != 1 || got[0] != fsx+"/ExtData/x.nc" {
		t.Errorf("dedup: %q %v", got, err)
	}
	_, err = noRoot.mapPaths([]string{fsx + "/ExtData/x.nc", "/a/ExtData/1", "/a/ExtData/2", "/a/ExtData/3", "/a/ExtData/4"})
	if err == nil || !strings.Contains(err.Error(), "4 of 5 paths map to no ferry mount") || !strings.Contains(err.Error(), "(and 1 more)") {
		t.Errorf("bad paths: %v", err)
	}
	// --root must be under a mount.
	if _, err := newPathMapper(regs, t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not under a running ferry mount") {
		t.Errorf("--root outside: %v", err)
	}
	if _, err := newPathMapper(regs, filepath.Join(fsx, "nope")); err == nil || !strings.Contains(err.Error(), "--root") {
		t.Errorf("--root missing: %v", err)
	}
}

// FuzzParseDryrunLog: whatever the log, every path has an ExtData
// component, no doubled slash, and appears once.
func FuzzParseDryrunLog(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "log.dryrun"))
	f.Add(string(b))
	f.Add("HEMCO: Opening //ExtData//a\nFILE NOT FOUND ExtData/\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDryrunLog(strings.NewReader(s))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range got.Paths {
			if extDataIndex(p) < 0 || strings.Contains(p, "//") || seen[p] {
				t.Fatalf("bad path %q in %q", p, got.Paths)
			}
			seen[p] = true
		}
		if len(got.Paths) > got.Lines-got.Ignored || got.Ignored > got.Lines {
			t.Fatalf("counts: %d paths, %d lines, %d ignored", len(got.Paths), got.Lines, got.Ignored)
		}
	})
}

// The demo's dry-run log (scripts/demo.sh preloads from it) names files of
// the demo's sample tree, none of them twice.
func TestDemoDryrunLog(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "scripts", "demo-dryrun.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseDryrunLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 11 || got.Ignored != 2 {
		t.Errorf("%d paths, %d ignored; want 11, 2: %q", len(got.Paths), got.Ignored, got.Paths)
	}
	for _, p := range got.Paths {
		if !strings.HasPrefix(p, "/home/ubuntu/ExtData/") {
			t.Errorf("%s: not under the dry run's /home/ubuntu/ExtData", p)
		}
	}
}
