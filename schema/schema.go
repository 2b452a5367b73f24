package schema

import "embed"

// The file names of the schemas in FS.
const (
	Command    = "command.schema.json"
	Result     = "result.schema.json"
	DeadLetter = "dead-letter.schema.json"
)

// FS holds the three schemas, so a Go program validates against exactly the
// files an app in another language reads.
//
//go:embed *.schema.json
var FS embed.FS
