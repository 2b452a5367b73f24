// Package actions is the JetStream client for apps: it publishes commands
// (Publish, PublishAndWait), schedules them on JetStream's message schedules
// (ScheduleAt, ListSchedules, CancelSchedule), and learns what became of
// one command (Status). The wire format it sends and reads, from the command
// types to the records and error classes, lives in package contract; the
// types an app passes here are also named in this package (Send is
// contract.Send). It imports no API client (package execute carries
// commands out).
package actions
