package contract

// Limits on a command message's headers, checked before its body is read: a
// publisher cannot make the worker hold (and copy into a dead letter) an
// unbounded header block.
const (
	// MaxHeaders is the number of header lines (values, over all names).
	MaxHeaders = 64
	// MaxHeaderBytes bounds the header block as written on the wire
	// ("Name: value\r\n" per value).
	MaxHeaderBytes = 8 << 10
)

// ReplayedFromHeader marks a command republished from a dead letter
// ("CHAT_DLQ:42"), by `worker dlq replay` and the console. Such a command is
// an operator's decision to send it: the worker does not hold it to a
// frequency cap (it still counts against the cap of later commands).
const ReplayedFromHeader = "Chat-Replayed-From"

// CheckHeaders refuses a header block over MaxHeaders lines or
// MaxHeaderBytes bytes with an error of class invalid. It takes a plain map
// so this package needs no NATS client; a nats.Header is one.
func CheckHeaders(h map[string][]string) error {
	lines, size := 0, 0
	for name, values := range h {
		for _, v := range values {
			lines++
			size += len(name) + len(": ") + len(v) + len("\r\n")
		}
	}
	switch {
	case lines > MaxHeaders:
		return Invalidf("the command message has %d header lines; the limit is %d", lines, MaxHeaders)
	case size > MaxHeaderBytes:
		return Invalidf("the command message's headers are %d bytes; the limit is %d", size, MaxHeaderBytes)
	}
	return nil
}
