package main

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/term"
)

// isTerminal says whether w is a terminal a person watches, where a bar
// redrawn in place and coloured logs make sense. A character device is not
// enough: /dev/null is one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar is a progress bar redrawn in place on a terminal, for the
// commands that work through many items (dlq replay, export).
type progressBar struct {
	w     io.Writer
	drawn bool
}

const progressWidth = 30

// draw redraws the bar at done of total, followed by stats.
func (b *progressBar) draw(done, total int, stats string) {
	filled := progressWidth * min(done, total) / max(total, 1)
	fmt.Fprintf(b.w, "\r\033[K[%s%s] %s", strings.Repeat("#", filled), strings.Repeat(".", progressWidth-filled), stats)
	b.drawn = true
}

// println prints a line of its own above the bar, which the next draw
// puts back.
func (b *progressBar) println(line string) {
	fmt.Fprintf(b.w, "\r\033[K%s\n", line)
}

// finish ends the bar's line, so that what follows starts on a new one.
func (b *progressBar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
