// Package chat is a client for the GoSquared Live Chat API (v1): it sends
// messages, leaves notes, archives conversations and reads chats, feeds and
// messages.
//
// The client classifies every failure as retryable or permanent (see
// [ErrRetryable], [ErrPermanent] and [RetryAfter]) but never retries by itself:
// the caller owns the retry policy. A client-side adaptive limiter learns the
// API's rate budget from the X-RateLimit-* headers so that a busy worker stays
// under it. Credentials never appear in error strings.
package chat
