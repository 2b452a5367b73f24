// Package k8s holds the Kubernetes manifests of the worker (Kustomize base,
// overlays and components; see README.md) and the tests that keep them
// honest: every manifest decodes strictly into the Kubernetes API types, every
// overlay builds, and the probes, ports, environment variables and KEDA
// trigger match what cmd/worker and consumer actually serve and read.
package k8s
