package chat

import (
	"net/url"
	"regexp"
	"strings"
)

// Redaction works on the places a credential can be recognised by its
// position: the value of an api_key or site_token parameter or field (in a
// URL's query, a form, JSON or a header-like "name: value"), and the user
// information of a URL. Only then is the text scanned for the credentials'
// values themselves, as a last guard for a server that echoes them back
// bare, and only for values long enough to be secrets: a one-letter site
// token replaced everywhere turned "Post ... connection refused" into
// "PoREDACTEDt ... connection refuREDACTEDed".

// minScanLen is the shortest credential value the plain-text scan looks for.
// GoSquared's site tokens have 12 characters (GSN-106863-S) and its API keys
// more, so 8 leaves a margin below both. A shorter value cannot be kept
// secret anyway (8 bytes of an alphabet of 36 is about 2^41 guesses; 4
// bytes is about 2^21), while it matches parts of ordinary words in the
// messages of the network stack and the API; the structured places above
// still hide it wherever it appears as a credential.
const minScanLen = 8

const redactedText = "REDACTED"

var (
	// credParam matches "api_key=v", "site_token%3Dv", `"api_key":"v"`,
	// "site_token: v" and the like; group 2 is the value.
	credParam = regexp.MustCompile(`(?i)((?:api_key|site_token|apikey|sitetoken)(?:"?\s*[:=]\s*"?|%3D|%22%3A%22))([^&\s"'<>#;,)}\]\\]+)`)
	// urlUser matches the user information of a URL ("://user:pass@").
	urlUser = regexp.MustCompile(`(://)[^/\s@"'<>]+@`)
)

// redact removes credentials from s, first from the places where they are
// recognisable by their position, then, for values of at least minScanLen
// bytes, wherever their text appears (raw, query- or path-escaped).
func redact(s string, creds Credentials) string {
	if strings.Contains(s, "://") {
		s = urlUser.ReplaceAllString(s, "${1}"+redactedText+"@")
	}
	s = credParam.ReplaceAllString(s, "${1}"+redactedText)
	for _, v := range []string{creds.APIKey, creds.SiteToken} {
		if len(v) < minScanLen {
			continue
		}
		s = strings.ReplaceAll(s, v, redactedText)
		for _, esc := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			if esc != v {
				s = strings.ReplaceAll(s, esc, redactedText)
			}
		}
	}
	return s
}
