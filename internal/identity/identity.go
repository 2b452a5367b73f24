// Package identity names this worker process for people reading its
// records: dead letters, idempotency claims and NATS connections.
package identity

import (
	"fmt"
	"os"
)

// Name is "host/pid".
func Name() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
