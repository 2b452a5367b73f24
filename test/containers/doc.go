// Package containers starts the worker and a NATS JetStream cluster in Docker
// for the system tests, with testcontainers-go.
//
// No image is pulled: NATSImage and WorkerImage compile static binaries and
// build FROM-scratch images from the repository's own Dockerfiles, once per
// test binary, reusing an image whose content label already matches. Every
// container and network is removed by t.Cleanup; Ryuk is disabled because
// its image cannot be pulled here.
package containers
