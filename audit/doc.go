// Package audit records what operators did to the system — replays, purges,
// cancelled schedules, paused and resumed projects — in a JetStream stream,
// so that "who replayed these at 3 a.m.?" has an answer. The console and the
// command line append to it; the console lists it.
package audit
