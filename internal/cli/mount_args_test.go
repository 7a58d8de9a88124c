package cli

import (
	"io"
	"slices"
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
