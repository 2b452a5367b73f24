// Package e2e runs the worker binary as real child processes against one
// nats-server and the chat API simulator, and kills and adds workers while
// commands flow, to check what no in-process test can: that a SIGKILL at
// any point loses nothing, doubles nothing, and keeps each chat in order.
package e2e
