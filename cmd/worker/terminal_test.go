package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestIsTerminal: output redirected to /dev/null, a file or a pipe is not a
// terminal, so a replay or an export there draws no bar and --log-format
// auto writes JSON. /dev/null is a character device, which the check used
// to take for a terminal.
func TestIsTerminal(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devNull.Close() })
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	for name, out := range map[string]any{"/dev/null": devNull, "a file": file, "a pipe": w, "a buffer": &bytes.Buffer{}} {
		if isTerminal(out.(interface{ Write([]byte) (int, error) })) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	b := &progressBar{w: &out}
	b.draw(1, 3, "one")
	b.println("skipped x")
	b.draw(3, 3, "done")
	b.finish()
	want := "\r\033[K[##########....................] one" +
		"\r\033[Kskipped x\n" +
		"\r\033[K[##############################] done\n"
	if out.String() != want {
		t.Errorf("bar drew %q, want %q", out.String(), want)
	}
}
