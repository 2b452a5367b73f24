// Package doclinks holds the test that keeps the repository's Markdown
// honest: every relative link resolves to a file in the repository, and none
// points outside it, so the docs stand alone wherever the repository goes.
package doclinks
