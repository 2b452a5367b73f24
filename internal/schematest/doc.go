// Package schematest validates records against the JSON Schemas in schema/,
// for tests in any package: a test that stores results or dead letters
// checks each one with Result or DeadLetter, so the schemas apps rely on
// cannot drift from what the worker writes.
package schematest
