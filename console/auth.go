package console

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// Auth says who may use the console. With neither field set, anyone who
// can reach the address may, which CheckExposure allows on loopback only.
type Auth struct {
	// Users maps user names to passwords for HTTP basic auth.
	Users map[string]string
	// Header names a header an authenticating proxy sets to the user's
	// name (X-Forwarded-User, say). The console then trusts it, so it must
	// be reachable only through that proxy.
	Header string
}

func (a Auth) enabled() bool { return len(a.Users) > 0 || a.Header != "" }

// ReadAuthFile reads user:password lines (blank lines and # comments
// skipped), as a mounted Kubernetes secret holds them.
func ReadAuthFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("console: auth file: %w", err)
	}
	defer f.Close()
	users := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			// The line itself may be a password: never repeat it.
			return nil, fmt.Errorf("console: auth file %s line %d: want user:password", path, n)
		}
		users[user] = pass
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("console: auth file %s: %w", path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("console: auth file %s names no user", path)
	}
	return users, nil
}

// ErrExposed: the console would listen beyond loopback with no
// authentication.
var ErrExposed = errors.New("console: listening beyond loopback needs authentication")

// CheckExposure refuses an address beyond loopback (another interface, or
// every one) unless a is enabled.
func CheckExposure(addr string, a Auth) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("console: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if a.enabled() {
		return nil
	}
	return fmt.Errorf("%w: %s is reachable from other machines; give --auth-file (user:password lines) or --auth-header (set by an authenticating proxy), or listen on 127.0.0.1", ErrExposed, addr)
}

type whoKey struct{}

// who is the operator making the request, for the audit log.
func who(r *http.Request) string {
	s, _ := r.Context().Value(whoKey{}).(string)
	return s
}

func (c *Console) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var name string
		switch a := c.cfg.Auth; {
		case len(a.Users) > 0:
			user, pass, ok := r.BasicAuth()
			if !ok || !c.passwordOK(user, pass) {
				w.Header().Set("WWW-Authenticate", `Basic realm="chatworker console", charset="UTF-8"`)
				http.Error(w, "401 unauthorized: this console wants a user name and password", http.StatusUnauthorized)
				return
			}
			name = user
		case a.Header != "":
			name = r.Header.Get(a.Header)
			if name == "" {
				http.Error(w, "401 unauthorized: no "+a.Header+" header; reach the console through its authenticating proxy", http.StatusUnauthorized)
				return
			}
		default:
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			name = "anonymous@" + host
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, name)))
	})
}

// passwordOK compares digests in constant time, so neither the length nor
// a prefix of a password leaks through timing.
func (c *Console) passwordOK(user, pass string) bool {
	want, ok := c.cfg.Auth.Users[user]
	if !ok {
		want = "\x00no such user"
	}
	a, b := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && ok
}
