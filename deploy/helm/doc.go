// Package helm holds the worker's Helm chart (chatworker/, see its
// README.md) and the tests that keep it at parity with the Kustomize base in
// deploy/k8s: the chart renders and lints with the Helm SDK in process, every
// render decodes strictly and passes the same checks against the code as the
// Kustomize builds (deploy/k8s/k8stest), the default render matches the
// Kustomize render field by field, and values.schema.json rejects mistyped
// values.
package helm
