package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/idempotency"
	"go.uber.org/zap"
)

// runPublish publishes one command and prints its id.
func runPublish(ctx context.Context, typ string, args []string, stdout, stderr io.Writer) error {
	var (
		n                                     natsFlags
		chatID, content, id, from, site, meta string
	)
	fs := newFlagSet(typ, typ+" --chat ID [flags]", stderr)
	n.register(fs)
	fs.String(&chatID, "chat", "", "", "chat ID (the visitor's person_id), required")
	fs.String(&id, "id", "", "", "command id, the idempotency key (default: a new UUID)")
	fs.String(&site, "site-token", "", "", "another project than the worker's default")
	fs.String(&meta, "metadata", "", "", "JSON object echoed in the result")
	if typ != "archive" {
		fs.String(&content, "content", "", "", "text of the message or note, required")
	}
	if typ == "send" {
		fs.String(&from, "from", "", "", "client, agent or bot (default: the API's default, client)")
	}
	var when timing
	when.register(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (quote the content: --content 'Hello there')", fs.Arg(0))}
	}
	if chatID == "" {
		return usageError{fmt.Errorf("--chat is required")}
	}
	cmd := actions.Command{ID: id, Type: actions.Type(typ), ChatID: chatID, Content: content, From: from, SiteToken: site}
	if meta != "" {
		if !json.Valid([]byte(meta)) {
			return usageError{fmt.Errorf("--metadata is not valid JSON")}
		}
		cmd.Metadata = json.RawMessage(meta)
	}
	if cmd.ID == "" {
		cmd.ID = actions.NewID()
	}
	at, err := when.apply(&cmd, time.Now())
	if err != nil {
		return usageError{err}
	}
	if err := cmd.Validate(); err != nil {
		return usageError{err}
	}
	nc, js, err := n.connect(ctx, "chatworker "+typ, nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	if !at.IsZero() {
		return schedule(ctx, js, cmd, at, n.subjects(), stdout, stderr)
	}
	published, err := actions.Publish(ctx, js, cmd, n.subjects())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, published.ID)
	return nil
}

// runProvision creates or updates the streams, the consumer and the
// idempotency bucket, then exits.
func runProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		n      natsFlags
		bucket string
		ttl    time.Duration
	)
	fs := newFlagSet("provision", "provision [flags]", stderr)
	n.register(fs)
	fs.String(&bucket, "idempotency-bucket", "WORKER_IDEMPOTENCY_BUCKET", idempotency.DefaultBucket, "key-value bucket of the idempotency store")
	fs.Duration(&ttl, "idempotency-ttl", "WORKER_IDEMPOTENCY_TTL", idempotency.DefaultTTL, "how long a succeeded command id is remembered")
	if err := fs.parse(args); err != nil {
		return err
	}
	nc, js, err := n.connect(ctx, "chatworker provision", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := n.topology().WithDefaults()
	if _, err := consumer.Provision(ctx, js, topo); err != nil {
		return err
	}
	if _, err := idempotency.Open(ctx, js, idempotency.Config{Bucket: bucket, TTL: ttl, Replicas: n.replicas}); err != nil {
		return fmt.Errorf("idempotency bucket: %w", err)
	}
	fmt.Fprintf(stdout, "streams %s, %s, %s, consumer %s and bucket %s are in place\n",
		topo.CommandsStream, topo.ResultsStream, topo.DeadLettersStream, topo.Durable, bucket)
	return nil
}
