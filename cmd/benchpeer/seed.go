package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"loginsvc/internal/store"
)

// seed writes n sessions, spread over users users, as Redis protocol for
// `redis-cli --pipe` (the fastest way in, and no Redis client outside
// package store): each a SET of the session key with its expiry, and a
// ZADD to its user's index, as a login through the service stores them.
// The document is the template (a session the service itself stored, as
// GET returns it) with the user, the times and the client address of each
// session its own, so that no two documents are the same bytes (the
// service's decode memo is keyed by them) and each is as long as a real
// one. The sessions' tokens go to tokensFile, one a line, for the load
// generator.
func seed(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	templateFile := fs.String("template", "", "a stored session document (GET of a session key)")
	n := fs.Int("n", 1_000_000, "sessions")
	users := fs.Int("users", 100_000, "users the sessions belong to")
	tokensFile := fs.String("tokens", "", "file to write the sessions' tokens to")
	idle := fs.Duration("idle", 30*time.Minute, "the service's SESSION_IDLE_TIMEOUT: each key expires then")
	lifetime := fs.Duration("lifetime", 24*time.Hour, "the service's SESSION_LIFETIME")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 || *users <= 0 || *tokensFile == "" {
		return errors.New("seed: -n, -users and -tokens are required")
	}
	raw, err := os.ReadFile(*templateFile)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	var doc struct {
		Deadline time.Time      `json:"deadline"`
		Values   map[string]any `json:"values"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	// The template's own fields say which values are times and which is
	// the user: the seed changes those it finds, by what they hold.
	userField, timeFields := "", []string{}
	for k, v := range doc.Values {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
			timeFields = append(timeFields, k)
		} else if k == "username" {
			userField = k
		}
	}
	if userField == "" || len(timeFields) == 0 {
		return errors.New("template: no username or times in the document")
	}
	tf, err := os.Create(*tokensFile)
	if err != nil {
		return err
	}
	tokens := bufio.NewWriterSize(tf, 1<<20)
	out := bufio.NewWriterSize(stdout, 1<<20)
	now := time.Now().UTC()
	for i := range *n {
		var b [32]byte
		_, _ = rand.Read(b[:])
		token := base64.RawURLEncoding.EncodeToString(b[:])
		sum := sha256.Sum256([]byte(token))
		hash := base64.RawURLEncoding.EncodeToString(sum[:])
		user := "scale" + strconv.Itoa(i%*users)
		// Logged in over the last hour, seen just now: live, and no
		// idle touch due before the run.
		login := now.Add(-time.Duration(i%3600) * time.Second)
		ends := login.Add(*lifetime)
		for _, k := range timeFields {
			doc.Values[k] = login.Format(time.RFC3339Nano)
		}
		doc.Values["last_seen_at"] = now.Format(time.RFC3339Nano)
		doc.Values["expires_at"] = ends.Format(time.RFC3339Nano)
		doc.Values[userField] = user
		doc.Values["login_ip"] = "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		doc.Deadline = ends
		body, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		expiry := now.Add(*idle)
		if ends.Before(expiry) {
			expiry = ends
		}
		writeCommand(out, "SET", store.SessionKey(hash), string(body), "PXAT", strconv.FormatInt(expiry.UnixMilli(), 10))
		writeCommand(out, "ZADD", store.UserSessionsKey(user), strconv.FormatInt(ends.UnixMilli(), 10), hash)
		_, _ = tokens.WriteString(token)
		_ = tokens.WriteByte('\n')
	}
	if err := tokens.Flush(); err != nil {
		return err
	}
	if err := tf.Close(); err != nil {
		return err
	}
	return out.Flush()
}

// writeCommand writes one command in the Redis protocol (RESP).
func writeCommand(w *bufio.Writer, args ...string) {
	_, _ = fmt.Fprintf(w, "*%d\r\n", len(args))
	for _, a := range args {
		_, _ = fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
	}
}
