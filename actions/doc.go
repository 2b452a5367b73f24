// Package actions is the wire format of the chat commands (send, note,
// archive, export) and of the records the worker publishes about them
// (Result, DeadLetter): the subjects they travel on, how commands are
// decoded, validated and published, and the error classes that decide what
// becomes of a failed command. Apps import it to publish commands and read
// records, to schedule commands on JetStream's message schedules
// (ScheduleAt, ListSchedules, CancelSchedule), and to learn what became of
// one command (PublishAndWait, Status); it imports no API client (package
// execute carries commands out).
package actions
