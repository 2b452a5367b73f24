package execute

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
)

// Executor carries out commands against the Chat API.
type Executor struct {
	Client *chat.Client
	// SiteToken is the site token of the client's default credentials: the
	// default project's.
	SiteToken string
	// Default names the default project; "" is contract.DefaultProject.
	Default string
	// Projects are the other projects, by name, each with its own
	// credentials: a v2 command names one in its subject, a v1 command by
	// its site_token. A command naming any other project is refused (class
	// permanent), so an app cannot reach a business's other projects
	// through the worker.
	Projects map[string]chat.Credentials
	// Keys, when set, supplies the credentials of every project instead of
	// the client's defaults and Projects, read again when a paused project
	// is checked (see Check).
	Keys Keys
	// Exporter carries out export commands; nil when the worker has no
	// export target.
	Exporter interface {
		ExportChat(ctx context.Context, project, chatID string, opts ...chat.CallOption) (json.RawMessage, error)
	}
}

// Execute makes the one API call that carries out cmd. The command id is
// sent as the Idempotency-Key, so an API that honours it applies the effect
// once however often the worker retries.
func (e *Executor) Execute(ctx context.Context, cmd contract.Command) (contract.Outcome, error) {
	opts := []chat.CallOption{chat.WithIdempotencyKey(cmd.ID)}
	name, err := e.resolve(cmd)
	if err != nil {
		return contract.Outcome{}, err
	}
	if creds, _ := e.credentials(name); creds != nil {
		opts = append(opts, chat.WithCallCredentials(*creds))
	}
	call, ok := calls[cmd.Type]
	if !ok {
		return contract.Outcome{}, contract.Invalidf("unknown command type %q", cmd.Type)
	}
	return call(e, ctx, cmd, opts)
}

// calls holds the one API call of each command type of contract.Specs
// (TestCallsCoverTheContract holds the two together). A call returns the
// API's errors as they are: ClassOf classifies them.
var calls = map[contract.Type]func(*Executor, context.Context, contract.Command, []chat.CallOption) (contract.Outcome, error){
	contract.TypeSend:    (*Executor).send,
	contract.TypeNote:    (*Executor).note,
	contract.TypeArchive: (*Executor).archive,
	contract.TypeExport:  (*Executor).export,
}

func (e *Executor) send(ctx context.Context, cmd contract.Command, opts []chat.CallOption) (contract.Outcome, error) {
	_, resp, err := e.Client.SendMessage(ctx, cmd.ChatID, chat.SendMessageRequest{Content: cmd.Content, From: cmd.From}, opts...)
	return outcome(resp, err)
}

func (e *Executor) note(ctx context.Context, cmd contract.Command, opts []chat.CallOption) (contract.Outcome, error) {
	_, resp, err := e.Client.LeaveNote(ctx, cmd.ChatID, chat.NoteRequest{Content: cmd.Content}, opts...)
	return outcome(resp, err)
}

func (e *Executor) archive(ctx context.Context, cmd contract.Command, opts []chat.CallOption) (contract.Outcome, error) {
	return outcome(e.Client.Archive(ctx, cmd.ChatID, opts...))
}

func (e *Executor) export(ctx context.Context, cmd contract.Command, opts []chat.CallOption) (contract.Outcome, error) {
	if e.Exporter == nil {
		return contract.Outcome{}, contract.Permanentf("this worker has no export target: start it with --export-bucket (WORKER_EXPORT_BUCKET)")
	}
	body, err := e.Exporter.ExportChat(ctx, cmd.Project, cmd.ChatID, opts...)
	if err != nil {
		return contract.Outcome{}, err // API errors keep their class; a failing target is internal, so retried
	}
	return contract.Outcome{APIStatus: http.StatusOK, Response: body}, nil
}

// outcome is what a call's response says; the response is kept when it is
// JSON.
func outcome(resp *chat.Response, err error) (contract.Outcome, error) {
	if err != nil {
		return contract.Outcome{}, err
	}
	out := contract.Outcome{APIStatus: resp.StatusCode}
	if len(resp.Body) > 0 && json.Valid(resp.Body) {
		out.Response = resp.Body
	}
	return out, nil
}
