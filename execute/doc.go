// Package execute carries out commands against the GoSquared Chat API and
// classifies what comes back: one API call per command type (calls), for
// exactly the types of package contract. It is apart from the contract and
// from package actions so that an app that only publishes commands or reads
// records pulls in neither the API client nor its CA bundle.
package execute
