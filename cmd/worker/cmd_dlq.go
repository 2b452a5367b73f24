package main

import (
	"context"
	"errors"
	"io"
)

// runDLQ inspects and replays dead letters.
func runDLQ(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return usageError{errors.New("dlq: not implemented yet")}
}
