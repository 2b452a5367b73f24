// Package schema holds the JSON Schemas (draft 2020-12) of the three records
// apps exchange with the worker: the command they publish, and the result
// and dead letter the worker publishes back. Apps in any language validate
// against the .schema.json files in this directory; Go code can read them
// from FS. Tests keep the schemas, the Go types and the decoder in
// agreement.
package schema
