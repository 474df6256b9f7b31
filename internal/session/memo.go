package session

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// A logged-in request reads the same stored document as the last request
// of its session did (the idle touch rewrites it at most once a minute),
// so decoding it again, JSON and times, is work done before. docMemo
// remembers what each document decoded to, keyed by the document's
// bytes: the result is a pure function of those bytes, so the memo
// decides nothing about whether a session is live. That is still Redis's
// answer, or the session cache's, which the memo never sees; a revoked
// session's bytes are never found again, and its entry is dead weight
// until evicted.

const (
	// memoMaxEntries bounds how many documents the memo keeps.
	memoMaxEntries = 10_000
	// memoMaxBytes bounds the documents kept (their bytes are the keys),
	// about what the decoded values take again.
	memoMaxBytes = 8 << 20
)

// doc is one decoded session document: immutable once in the memo, and
// shared by every request that reads those bytes.
type doc struct {
	deadline time.Time
	// values are never handed out: scs changes the map it is given,
	// so Decode gives each request its own copy.
	values map[string]any
	// base is the record the document holds, without the public id (the
	// key hash is not in the document) and with ExpiresAt at the absolute
	// deadline (the idle timeout is the manager's).
	base Record
	// lastSeen is the stored last-seen time, zero when absent (base's
	// LastSeenAt then reads as the login time).
	lastSeen time.Time
	// indexed is whether the document has the absolute deadline that
	// the per-user index was given (see Manager.loaded).
	indexed bool
	// id is the public id of the last hash this document was read
	// under: the same bytes belong to one session in practice, so its
	// SHA-256 is computed once.
	id atomic.Pointer[[2]string]
}

func newDoc(deadline time.Time, values map[string]any) *doc {
	d := &doc{deadline: deadline, values: values}
	d.base = recordOf("", deadline, values, time.Time{})
	d.lastSeen, _ = timeValue(values, fieldLastSeenAt)
	_, d.indexed = timeValue(values, fieldExpiresAt)
	return d
}

// publicID is publicID(hash), remembered for the next request.
func (d *doc) publicID(hash string) string {
	if p := d.id.Load(); p != nil && p[0] == hash {
		return p[1]
	}
	id := publicID(hash)
	d.id.Store(&[2]string{hash, id})
	return id
}

// record is the document's record read under hash, with the idle
// deadline of an idle timeout of idle (0: none).
func (d *doc) record(hash string, idle time.Duration) Record {
	r := d.base
	r.ID = d.publicID(hash)
	if idle > 0 && !d.lastSeen.IsZero() {
		if e := d.lastSeen.Add(idle); e.Before(r.ExpiresAt) {
			r.ExpiresAt = e
		}
	}
	return r
}

type docMemo struct {
	mu    sync.RWMutex
	docs  map[string]*doc
	bytes int
}

func newDocMemo() *docMemo { return &docMemo{docs: map[string]*doc{}} }

func (m *docMemo) get(b []byte) *doc {
	m.mu.RLock()
	d := m.docs[string(b)]
	m.mu.RUnlock()
	return d
}

func (m *docMemo) put(b []byte, d *doc) {
	if len(b) > memoMaxBytes/16 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[string(b)]; ok {
		return
	}
	for k := range m.docs { // map order is random: random victims
		if len(m.docs) < memoMaxEntries && m.bytes+len(b) <= memoMaxBytes {
			break
		}
		delete(m.docs, k)
		m.bytes -= len(k)
	}
	m.docs[string(b)] = d
	m.bytes += len(b)
}

// cloneValues is the copy of d's values a request may change.
func (d *doc) cloneValues() map[string]any { return maps.Clone(d.values) }
