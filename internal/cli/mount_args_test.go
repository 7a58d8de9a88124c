package cli

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// mountCmd is `ferry mount` with its flags parsed (its own flags and
// the inherited global ones), as runMount sees it.
func mountCmd(t *testing.T) *cobra.Command {
	t.Helper()
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	cmd, _, err := root.Find([]string{"mount"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(nil); err != nil { // merges the inherited flags
		t.Fatal(err)
	}
	return cmd
}

func TestWithoutBackground(t *testing.T) {
	cmd := mountCmd(t)
	for _, c := range []struct{ in, want []string }{
		{[]string{"mount", "--background", "--store", "s", "mp"}, []string{"mount", "--store", "s", "mp"}},
		{[]string{"mount", "--background=true", "--store=s", "mp"}, []string{"mount", "--store=s", "mp"}},
		{[]string{"--endpoint-url", "http://x", "mount", "mp", "--store", "s", "--background"}, []string{"--endpoint-url", "http://x", "mount", "mp", "--store", "s"}},
		// A value that looks like the flag stays a value; after "--"
		// everything is an argument.
		{[]string{"mount", "--store", "--background", "--background", "--", "--background"}, []string{"mount", "--store", "--background", "--", "--background"}},
		{[]string{"mount", "--debug", "--background", "--log-level", "warn", "mp"}, []string{"mount", "--debug", "--log-level", "warn", "mp"}},
	} {
		if got := withoutBackground(c.in, cmd.Flags()); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// Every flag of ferry mount, given in either form, reaches the background
// daemon: the child's arguments are the parent's without --background,
// for flags added later too (TestMountBackgroundArgs runs the real child).
func TestWithoutBackgroundKeepsEveryFlag(t *testing.T) {
	cmd := mountCmd(t)
	var spaced, joined []string
	n := 0
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "background" {
			return
		}
		n++
		v := "v" + f.Name
		if f.NoOptDefVal != "" { // a boolean: no separate value
			spaced = append(spaced, "--"+f.Name)
		} else {
			spaced = append(spaced, "--"+f.Name, v)
		}
		joined = append(joined, "--"+f.Name+"="+v)
	})
	if n < 15 {
		t.Fatalf("only %d flags found: the inherited ones are missing", n)
	}
	for _, args := range [][]string{spaced, joined} {
		in := append(append([]string{"mount", "--background"}, args...), "mp")
		want := append(append([]string{"mount"}, args...), "mp")
		if got := withoutBackground(in, cmd.Flags()); !slices.Equal(got, want) {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
}

func TestParseID(t *testing.T) {
	if id, err := parseID("--uid", "", "id -u"); id != nil || err != nil {
		t.Fatalf("not given: %v %v", id, err)
	}
	if id, err := parseID("--uid", "1000", "id -u"); err != nil || *id != 1000 {
		t.Fatalf("1000: %v %v", id, err)
	}
	for _, bad := range []string{"-1", "alice", "4294967295", "4294967296", "1e3"} {
		if _, err := parseID("--gid", bad, "id -g"); err == nil || !strings.Contains(err.Error(), "--gid") || !strings.Contains(err.Error(), "id -g") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
