// Package execute carries out commands against the GoSquared Chat API and
// classifies what comes back. It is apart from package actions so that an
// app that only publishes commands or reads records pulls in neither the
// API client nor its CA bundle.
package execute
