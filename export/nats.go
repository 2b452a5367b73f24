package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Default bucket names.
const (
	DefaultBucket            = "CHAT_EXPORTS"
	DefaultCheckpointsBucket = "CHAT_EXPORT_CHECKPOINTS"
)

// ObjectStore is the NATS JetStream Object Store target: one object per
// conversation per run, named
//
//	chats/<chat token>/<after>.jsonl
//
// where <after> is the 13-digit millisecond time of the cursor the line
// continues from (0000000000000 for a first export) and a short hash of the
// cursor's ids. The name depends only on the checkpoint the run started
// from, so a run that dies after storing an object but before saving the
// checkpoint stores the same name again next time, and Put replaces it:
// the conversation's objects never overlap. Objects exported on demand go
// to requests/<chat token>/<last item's time>.jsonl.
type ObjectStore struct {
	store  jetstream.ObjectStore
	bucket string
}

// OpenObjectStore binds to the bucket, creating it (file storage, replicas)
// if it does not exist; an existing bucket's settings are left alone.
func OpenObjectStore(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*ObjectStore, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	s, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		s, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: bucket, Description: "conversation exports (worker export)", Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", bucket, err)
	}
	return &ObjectStore{store: s, bucket: bucket}, nil
}

// ObjectName is the name of the object holding chatID's line that continues
// from after (nil: the beginning).
func ObjectName(chatID string, after *Cursor) string {
	key := "0000000000000"
	if after != nil {
		b, _ := json.Marshal(after.IDs)
		h := sha256.Sum256(b)
		key = fmt.Sprintf("%013d-%s", after.TS, hex.EncodeToString(h[:4]))
	}
	return "chats/" + token(chatID) + "/" + key + ".jsonl"
}

// Put stores the line as its own object; storing the same chat and After
// again replaces it.
func (o *ObjectStore) Put(ctx context.Context, l *Line, data []byte) (string, error) {
	return o.put(ctx, ObjectName(l.ChatID, l.After), l, data)
}

// projectDir is "<project>/" for a v2 project's export, "" otherwise: a
// project name is a valid object name and directory name as it stands.
func projectDir(l *Line) string {
	if l.Project == "" {
		return ""
	}
	return l.Project + "/"
}

// PutRequest stores a whole conversation under requests/ (requests/<project>/
// for a v2 project's).
func (o *ObjectStore) PutRequest(ctx context.Context, l *Line, data []byte) (string, error) {
	return o.put(ctx, "requests/"+projectDir(l)+token(l.ChatID)+"/"+fmt.Sprintf("%013d", l.Through.TS)+".jsonl", l, data)
}

func (o *ObjectStore) put(ctx context.Context, name string, l *Line, data []byte) (string, error) {
	meta := jetstream.ObjectMeta{
		Name:        name,
		Description: "conversation " + l.ChatID,
		Metadata: map[string]string{
			"chat_id": l.ChatID, "through": strconv.FormatInt(l.Through.TS, 10),
			"messages": strconv.Itoa(len(l.Messages)), "notes": strconv.Itoa(len(l.Notes)), "events": strconv.Itoa(len(l.Events)),
		},
	}
	if _, err := o.store.Put(ctx, meta, bytes.NewReader(append(data, '\n'))); err != nil {
		return "", fmt.Errorf("object store %s: put %s: %w", o.bucket, name, err)
	}
	return o.location(name), nil
}

func (o *ObjectStore) location(name string) string {
	return "nats-object://" + o.bucket + "/" + name
}

// Finish returns the bucket: a run's objects are under chats/.
func (o *ObjectStore) Finish(context.Context) (string, error) {
	return o.location("chats/"), nil
}

// Close does nothing: every Put is complete on its own.
func (o *ObjectStore) Close() error { return nil }

// KV keeps checkpoints in a NATS key-value bucket, one key per conversation
// (the chat ID in unpadded base64url, since chat IDs may hold any byte).
type KV struct {
	kv jetstream.KeyValue
}

type kvValue struct {
	ChatID string `json:"chat_id"`
	Cursor
}

// OpenKV binds to the checkpoints bucket, creating it if it does not exist.
func OpenKV(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*KV, error) {
	if bucket == "" {
		bucket = DefaultCheckpointsBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "how far each conversation was exported (worker export)", History: 1,
			Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint bucket %s: %w", bucket, err)
	}
	return &KV{kv: kv}, nil
}

func kvKey(chatID string) string { return base64.RawURLEncoding.EncodeToString([]byte(chatID)) }

// Load reads every checkpoint.
func (k *KV) Load(ctx context.Context) (map[string]Cursor, error) {
	w, err := k.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	defer w.Stop()
	m := map[string]Cursor{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("checkpoints: watcher stopped")
			}
			if e == nil { // all current values delivered
				return m, nil
			}
			var v kvValue
			if err := json.Unmarshal(e.Value(), &v); err != nil || v.ChatID == "" {
				return nil, fmt.Errorf("checkpoints: key %s holds no checkpoint: %v", e.Key(), err)
			}
			m[v.ChatID] = v.Cursor
		}
	}
}

// Save stores chatID's cursor.
func (k *KV) Save(ctx context.Context, chatID string, c Cursor) error {
	b, err := json.Marshal(kvValue{ChatID: chatID, Cursor: c})
	if err != nil {
		return err
	}
	if _, err := k.kv.Put(ctx, kvKey(chatID), b); err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	return nil
}

// Flush does nothing: Save waits for JetStream's acknowledgement.
func (k *KV) Flush(context.Context) error { return nil }

var (
	_ Sink        = (*ObjectStore)(nil)
	_ Checkpoints = (*KV)(nil)
)
