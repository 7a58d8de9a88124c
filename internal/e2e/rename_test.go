package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestChainedRenamesThroughMount is the reported case, with the binary:
// in an association exporting NEW and CHANGED, a directory of exported
// files is renamed twice in a row (mv a b; mv b c), with no pause, so the
// second rename lands while the first one's move may be under way. After
// `hsm wait` every file is under c/ with its content and nothing is left
// under a/ or b/ (the bucket kept a/f1..f3 and had nothing under c/ in 6 of
// 6 runs before moves were resolved from the files' identity).
func TestChainedRenamesThroughMount(t *testing.T) {
	srv, bucket, d := associatedD(t, "AutoExportPolicy={Events=[NEW,CHANGED]}")
	root := filepath.Join(d.mp, "d")
	for round := range 3 {
		a, b, c := fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round), fmt.Sprintf("c%d", round)
		if err := os.Mkdir(filepath.Join(root, a), 0o755); err != nil {
			t.Fatal(err)
		}
		want := map[string][32]byte{}
		for i := 1; i <= 3; i++ {
			body := []byte(fmt.Sprintf("round %d file %d", round, i))
			if err := os.WriteFile(filepath.Join(root, a, fmt.Sprintf("f%d", i)), body, 0o644); err != nil {
				t.Fatal(err)
			}
			want[fmt.Sprintf("f%d", i)] = sha256.Sum256(body)
		}
		d.ok("hsm", "wait", "--timeout", "60s", root)
		if err := os.Rename(filepath.Join(root, a), filepath.Join(root, b)); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(root, b), filepath.Join(root, c)); err != nil {
			t.Fatal(err)
		}
		d.ok("hsm", "wait", "--timeout", "60s", root)
		if _, ok := objectSum(t, srv, bucket, "d/"+c+"/"); !ok {
			t.Errorf("round %d: directory object d/%s/ missing", round, c)
		}
		for _, old := range []string{a, b} {
			if _, ok := objectSum(t, srv, bucket, "d/"+old+"/"); ok {
				t.Errorf("round %d: directory object d/%s/ left behind", round, old)
			}
		}
		for name, sum := range want {
			got, ok := objectSum(t, srv, bucket, "d/"+c+"/"+name)
			if !ok || got != sum {
				t.Errorf("round %d: d/%s/%s: present %v, content %s, want %s", round, c, name, ok, short(got), short(sum))
			}
			for _, old := range []string{a, b} {
				if _, ok := objectSum(t, srv, bucket, "d/"+old+"/"+name); ok {
					t.Errorf("round %d: d/%s/%s left behind", round, old, name)
				}
			}
		}
	}
}
