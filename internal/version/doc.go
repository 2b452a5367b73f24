// Package version says which build of the worker is running: the version and
// commit stamped with -ldflags by the image build, else what the Go toolchain
// recorded in the binary (runtime/debug.ReadBuildInfo), and the Go version.
// `worker version`, the startup log line and chatworker_build_info all read
// it, so the three always agree.
package version
