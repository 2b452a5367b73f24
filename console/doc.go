// Package console is the operator's console in the browser: the state of
// each project, the backlog, dead letters by class and the workers on one
// page, and the operators' actions (replay, purge, cancel a schedule, pause
// and resume a project) behind plain forms, under the same rules as the
// command line. It is an http.Handler; `worker console` serves it.
package console
