package contract

// The streams' default names (the contract's). A deployment may rename
// them; the worker, dlq and apps that read records all start from these.
const (
	DefaultCommandsStream    = "CHAT_COMMANDS"
	DefaultResultsStream     = "CHAT_RESULTS"
	DefaultDeadLettersStream = "CHAT_DLQ"
)
