package console

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// secretish names headers and fields that may hold credentials: the
// console never shows them, whatever its flags.
func secretish(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"authorization", "apikey", "api_key", "api-key", "secret", "password", "passwd", "cookie", "credential", "bearer"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// contentFields hold what customers wrote; HideContent hides them.
var contentFields = map[string]bool{"content": true, "text": true, "message": true, "body": true, "messages": true}

// showJSON indents a command or response for reading, with credentials
// redacted and, when hide is set, the customers' text hidden.
func showJSON(raw json.RawMessage, hide bool) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		if hide {
			return fmt.Sprintf("[hidden: %d bytes, not JSON]", len(raw))
		}
		return fmt.Sprintf("%q", raw)
	}
	v = redact(v, hide)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "[unprintable]"
	}
	return string(b)
}

func redact(v any, hide bool) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			switch {
			case secretish(k):
				t[k] = "[redacted]"
			case hide && contentFields[k]:
				b, _ := json.Marshal(x)
				t[k] = fmt.Sprintf("[hidden: %d bytes]", len(b))
			default:
				t[k] = redact(x, hide)
			}
		}
	case []any:
		for i := range t {
			t[i] = redact(t[i], hide)
		}
	}
	return v
}

func headerRows(h map[string][]string) [][2]string {
	var rows [][2]string
	for k, vs := range h {
		v := strings.Join(vs, ", ")
		if secretish(k) {
			v = "[redacted]"
		}
		rows = append(rows, [2]string{k, v})
	}
	slices.SortFunc(rows, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return rows
}

// traceID is the trace id of a W3C traceparent (version-trace-parent-flags).
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}
