package chat

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	short := Credentials{APIKey: "k", SiteToken: "s"}
	real := Credentials{APIKey: "9f86d081884c7d659a2feaa0c55ad015", SiteToken: "GSN-106863-S"}
	tests := []struct {
		name  string
		creds Credentials
		in    string
		want  string
	}{
		{"one-letter token leaves words alone", short,
			`Post "/chat/v1/chats/visitors/messages": dial tcp 127.0.0.1:9: connect: connection refused`,
			`Post "/chat/v1/chats/visitors/messages": dial tcp 127.0.0.1:9: connect: connection refused`},
		{"one-letter values hidden in a query", short,
			`Error 4001: bad url /chats?api_key=k&site_token=s&limit=1`,
			`Error 4001: bad url /chats?api_key=REDACTED&site_token=REDACTED&limit=1`},
		{"one-letter values hidden in JSON and headers", short,
			`{"api_key":"k","site_token": "s"} Site_Token: s`,
			`{"api_key":"REDACTED","site_token": "REDACTED"} Site_Token: REDACTED`},
		{"escaped query separator", short,
			`next=%2Fchats%3Fapi_key%3Dk`,
			`next=%2Fchats%3Fapi_key%3DREDACTED`},
		{"user information of a URL", short,
			`proxy http://admin:hunter2@proxy.local:3128/ refused`,
			`proxy http://REDACTED@proxy.local:3128/ refused`},
		{"realistic key echoed bare", real,
			`Error 4001: key 9f86d081884c7d659a2feaa0c55ad015 not authorised for GSN-106863-S`,
			`Error 4001: key REDACTED not authorised for REDACTED`},
		{"realistic key in a query", real,
			`GET /chats?site_token=GSN-106863-S&api_key=9f86d081884c7d659a2feaa0c55ad015`,
			`GET /chats?site_token=REDACTED&api_key=REDACTED`},
		{"realistic values escaped", Credentials{APIKey: "key+with/slash=", SiteToken: "GSN-é/?#"},
			`a key%2Bwith%2Fslash%3D b key+with%2Fslash= c GSN-%C3%A9%2F%3F%23`,
			`a REDACTED b REDACTED c REDACTED`},
		{"words that name the parameters are not values", real,
			`Error 4000: parameter missing: api_key and site_token are required`,
			`Error 4000: parameter missing: api_key and site_token are required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact(tt.in, tt.creds); got != tt.want {
				t.Errorf("redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactScanLength(t *testing.T) {
	for _, v := range []string{"abcdefg", "abcdefgh"} {
		got := redact("value "+v+" here", Credentials{APIKey: v})
		scanned := !strings.Contains(got, v)
		if want := len(v) >= minScanLen; scanned != want {
			t.Errorf("%d-byte value scanned = %v, want %v (%q)", len(v), scanned, want, got)
		}
	}
}
