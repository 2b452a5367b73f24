// Command image builds the worker's container image from a clone, in one
// command, on any Docker engine, including one that cannot pull base images:
//
//	go run ./cmd/image                  # chatworker:<version> and chatworker:latest
//	go run ./cmd/image -t registry.example.com/chatworker/worker
//
// It compiles a static binary with the host's Go toolchain (stamping the
// version from git describe and the commit with -ldflags), puts it in a
// build context with the Dockerfile and an empty directory, and runs
// docker build. The Dockerfile starts FROM scratch, so the engine pulls
// nothing; test/containers builds the system tests' image from the same
// Dockerfile, context layout and compiler flags.
package main
