package chat

import "time"

// Budget is what a client knows of one API key's rate budget: what the API
// last said in its X-RateLimit headers, and what this client spent of it
// over the last minute. Operators read it (`worker projects ls`, the
// console) to see how close a project runs to its budget.
type Budget struct {
	// Known is false until a response carried the headers.
	Known bool `json:"known"`
	// Limit is the budget in units a minute; Remaining what was left at
	// the last response.
	Limit     int `json:"limit"`
	Remaining int `json:"remaining"`
	// Used is the units this client's calls cost over the last minute.
	Used int `json:"used"`
}

// Budget reports the budget of the key that opts select (the client's
// default credentials unless WithCallCredentials). A client without rate
// limiting knows nothing of it.
func (c *Client) Budget(opts ...CallOption) Budget {
	if c.limiters == nil {
		return Budget{}
	}
	var cc callConfig
	for _, o := range opts {
		o(&cc)
	}
	creds := c.creds
	if cc.creds != nil {
		creds = *cc.creds
	}
	return c.limiters.get(creds.APIKey).budget(time.Now())
}

// spent counts the units spent per second over the last minute: a ring of
// one-second buckets, each stamped with its second.
type spent struct {
	units [60]int
	at    [60]int64
}

func (s *spent) add(now time.Time, units int) {
	sec := now.Unix()
	i := sec % 60
	if s.at[i] != sec {
		s.at[i], s.units[i] = sec, 0
	}
	s.units[i] += units
}

func (s *spent) lastMinute(now time.Time) int {
	sec, n := now.Unix(), 0
	for i := range s.units {
		if sec-s.at[i] < 60 {
			n += s.units[i]
		}
	}
	return n
}

func (k *keyLimiter) budget(now time.Time) Budget {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.last
	b.Used = k.spent.lastMinute(now)
	return b
}
