// Package chat is a client for the GoSquared Live Chat API (v1): it sends
// messages, leaves notes, archives conversations and reads chats, feeds and
// messages.
//
// The client classifies every failure as retryable or permanent (see
// [ErrRetryable], [ErrPermanent] and [RetryAfter]) but never retries by itself
// unless asked to with [WithRetry] (reads only): the caller owns the retry
// policy. A client-side adaptive limiter learns the API's rate budget from the
// X-RateLimit-* headers so that a busy worker stays under it.
//
// Configuration failures. An answer that blames the caller's configuration
// rather than the call matches [ErrConfig] as well as its class: HTTP 401 or
// 403, API code 4001, or an answer that is not the Chat API's at all (see
// [APIError.NotChatAPI]): an HTML page, a 2xx whose body is not a JSON
// object, or a 4xx (other than 408, 425, 429) or 3xx whose body is not the
// API's error JSON, as a proxy or a wrong base URL answers. A 404 with the
// API's own error body (an unknown chat) is the call's failure, not the
// configuration's. [Client.Check] makes one cheap read to test credentials
// and base URL before work starts.
//
// Lenient reading. The API document marks some shapes as assumed (the list
// envelope, a chat's "archived", the types of message fields). A value of
// another JSON type never fails a call, a listing or an export: the typed
// field is left empty, the raw JSON is kept ([Response.Body], [Chat.Raw],
// [FeedItem.Raw]), and a [Warning] names the field, on the Response and to
// the function given to [WithWarnings]. Only a body that is not a JSON
// object where one is expected is refused, as not the API's.
//
// Credentials never appear in error strings: values of api_key and
// site_token parameters, URL user information, and, as a last guard, the
// credentials' own text when 8 bytes or longer, are replaced by REDACTED.
package chat
