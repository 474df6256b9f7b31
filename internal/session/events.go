package session

// Events hears of the sessions a Manager starts and ends, for metrics. A
// Manager calls it after the fact, from the request that did it, so it
// must be quick and safe for concurrent use.
type Events interface {
	// SessionStarted is called once per login whose session was stored.
	SessionStarted()
	// SessionsEnded is called when n sessions ended for reason: "logout",
	// "revoke" (one or all of a user's: the sessions page, a password
	// change, a deleted user, the CLI), "expired" (read past its absolute
	// deadline) or "cap" (the oldest ended by MaxPerUser). Sessions Redis
	// expires while nobody reads them end unseen.
	SessionsEnded(reason string, n int)
}

// noEvents is the Events of a Manager configured without any.
type noEvents struct{}

func (noEvents) SessionStarted()           {}
func (noEvents) SessionsEnded(string, int) {}
