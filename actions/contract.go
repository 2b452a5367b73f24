package actions

import "github.com/chatworker/worker/contract"

// The types an app passes to and gets from this client. They are declared
// in package contract, the wire format; these names keep existing callers
// working.

// Command is contract.Command.
type Command = contract.Command

// Commander is contract.Commander.
type Commander = contract.Commander

// Send is contract.Send.
type Send = contract.Send

// Note is contract.Note.
type Note = contract.Note

// Archive is contract.Archive.
type Archive = contract.Archive

// Export is contract.Export.
type Export = contract.Export

// Type is contract.Type.
type Type = contract.Type

// Subjects is contract.Subjects.
type Subjects = contract.Subjects

// Result is contract.Result.
type Result = contract.Result

// DeadLetter is contract.DeadLetter.
type DeadLetter = contract.DeadLetter

// ErrorInfo is contract.ErrorInfo.
type ErrorInfo = contract.ErrorInfo

// QuietHours is contract.QuietHours.
type QuietHours = contract.QuietHours

// FrequencyCap is contract.FrequencyCap.
type FrequencyCap = contract.FrequencyCap

// Class is contract.Class.
type Class = contract.Class

// WorkerRecord is contract.IdempotencyRecord.
type WorkerRecord = contract.IdempotencyRecord
