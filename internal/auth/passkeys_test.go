package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"loginsvc/internal/session"
)

// testRP is the relying party of these tests: a browser on
// http://localhost:8080.
var testRP = RelyingParty{ID: "localhost", Origin: "http://localhost:8080"}

// softAuthenticator is a passkey authenticator in Go: one P-256 key, a
// discoverable credential, user verification, no attestation ("none"),
// as the virtual authenticator of the browser tests answers.
type softAuthenticator struct {
	key    *ecdsa.PrivateKey
	id     []byte
	handle []byte
	count  uint32
	aaguid [16]byte
}

func newSoftAuthenticator(t *testing.T) *softAuthenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &softAuthenticator{key: key, id: make([]byte, 32), aaguid: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}
	_, _ = rand.Read(a.id)
	return a
}

var b64 = base64.RawURLEncoding

// authData is the authenticator data: the RP ID's hash, the flags (user
// present and verified), the counter, and attested credential data when
// attested.
func (a *softAuthenticator) authData(t *testing.T, attested bool) []byte {
	t.Helper()
	rp := sha256.Sum256([]byte(testRP.ID))
	flags := byte(0x01 | 0x04)
	if attested {
		flags |= 0x40
	}
	out := append(rp[:], flags)
	out = binary.BigEndian.AppendUint32(out, a.count)
	if attested {
		x, y := make([]byte, 32), make([]byte, 32)
		pub, err := a.key.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		copy(x, pub[1:33])
		copy(y, pub[33:65])
		cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a.aaguid[:]...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(a.id)))
		out = append(out, a.id...)
		out = append(out, cose...)
	}
	return out
}

func clientData(kind, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": testRP.Origin, "crossOrigin": false})
	return b
}

// create answers registration options (JSON) as credential.toJSON().
func (a *softAuthenticator) create(t *testing.T, options []byte) []byte {
	t.Helper()
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatalf("registration options %s: %v", options, err)
	}
	handle, err := b64.DecodeString(opts.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user handle %q: %v", opts.PublicKey.User.ID, err)
	}
	a.handle = handle
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	return a.toJSON(t, map[string]any{
		"clientDataJSON":    b64.EncodeToString(clientData("webauthn.create", opts.PublicKey.Challenge)),
		"attestationObject": b64.EncodeToString(att),
		"transports":        []string{"internal"},
	})
}

// get answers assertion options (JSON), counting one more use.
func (a *softAuthenticator) get(t *testing.T, options []byte) []byte {
	t.Helper()
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatalf("assertion options %s: %v", options, err)
	}
	a.count++
	data := a.authData(t, false)
	cd := clientData("webauthn.get", opts.PublicKey.Challenge)
	hash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clone(data), hash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return a.toJSON(t, map[string]any{
		"clientDataJSON":    b64.EncodeToString(cd),
		"authenticatorData": b64.EncodeToString(data),
		"signature":         b64.EncodeToString(sig),
		"userHandle":        b64.EncodeToString(a.handle),
	})
}

func (a *softAuthenticator) toJSON(t *testing.T, response map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"authenticatorAttachment": "platform", "response": response, "clientExtensionResults": map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ceremonyToken is a browser's ceremony token (a session token's shape).
func ceremonyToken(t *testing.T) string {
	t.Helper()
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := b64.EncodeToString(b[:])
	if !ValidCeremonyToken(token) {
		t.Fatalf("ceremony token %q has not a session token's shape", token)
	}
	return token
}

// loggedInContext is the context of a request of user's, logged in with
// the password.
func (f *fixture) loggedInContext(t *testing.T, user, password string) context.Context {
	t.Helper()
	ctx := context.Background()
	who, err := f.svc.CheckPassword(ctx, user, password, netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatalf("CheckPassword(%q): %v", user, err)
	}
	ctx, err = f.sessions.Load(ctx, "")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := f.sessions.Start(ctx, session.Login{User: who.Name, Stamp: who.Stamp}); err != nil {
		t.Fatalf("Start(%q): %v", user, err)
	}
	return ctx
}

// addPasskey registers a passkey of user's through the service, as the
// security page does, and signs in with it once (so it has been used).
func (f *fixture) addPasskey(t *testing.T, user, password string) *softAuthenticator {
	t.Helper()
	ctx := f.loggedInContext(t, user, password)
	a := newSoftAuthenticator(t)
	token := ceremonyToken(t)
	opts, err := f.svc.BeginPasskeyRegistration(ctx, testRP, token)
	if err != nil {
		t.Fatalf("BeginPasskeyRegistration: %v", err)
	}
	if _, err := f.svc.FinishPasskeyRegistration(ctx, testRP, token, a.create(t, opts), "Test key"); err != nil {
		t.Fatalf("FinishPasskeyRegistration: %v", err)
	}
	ctx, err = f.sessions.Load(context.Background(), "")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	opts, err = f.svc.BeginPasskeySignIn(ctx, testRP, token, false)
	if err != nil {
		t.Fatalf("BeginPasskeySignIn: %v", err)
	}
	res, err := f.svc.PasskeySignIn(ctx, LoginRequest{IP: netip.MustParseAddr("192.0.2.1"), Credential: a.get(t, opts), Ceremony: token})
	if err != nil {
		t.Fatalf("PasskeySignIn: %v", err)
	}
	if res.User != user || !slices.Equal(res.Methods, []string{session.MethodHardwareKey, session.MethodUser}) {
		t.Fatalf("PasskeySignIn: user %q, methods %q; want %q, [hwk user]", res.User, res.Methods, user)
	}
	return a
}

// TestPasskeyRecordInRedis: a passkey registered and used once is kept
// in user:{<name>}:passkeys under its credential id, with the public data
// the issue lists and nothing private.
func TestPasskeyRecordInRedis(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", "correct horse battery staple")
	a := f.addPasskey(t, "alice", "correct horse battery staple")

	raw, err := f.client.HGetAll(context.Background(), "user:{alice}:passkeys").Result()
	if err != nil {
		t.Fatal(err)
	}
	id := b64.EncodeToString(a.id)
	if len(raw) != 1 || raw[id] == "" {
		t.Fatalf("user:{alice}:passkeys holds %d records, want one under the credential id %s", len(raw), id)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(raw[id]), &rec); err != nil {
		t.Fatalf("record %s: %v", raw[id], err)
	}
	pub, _ := a.key.PublicKey.Bytes()
	for _, tc := range []struct {
		field string
		ok    func(v any) bool
		want  string
	}{
		{"credential_id", func(v any) bool { return v == base64.StdEncoding.EncodeToString(a.id) }, "the credential id"},
		{"public_key", func(v any) bool {
			s, _ := v.(string)
			b, err := base64.StdEncoding.DecodeString(s)
			return err == nil && len(b) > 64 && strings.Contains(string(b), string(pub[1:33]))
		}, "the COSE public key"},
		{"sign_count", func(v any) bool { return v == float64(1) }, "1, the counter of the one sign-in"},
		{"aaguid", func(v any) bool { return v == base64.StdEncoding.EncodeToString(a.aaguid[:]) }, "the authenticator's AAGUID"},
		{"transports", func(v any) bool { return slices.Equal(toStrings(v), []string{"internal"}) }, `["internal"]`},
		{"backup_eligible", func(v any) bool { return v == false }, "false"},
		{"backup_state", func(v any) bool { return v == false }, "false"},
		{"flags", func(v any) bool { _, ok := v.(float64); return ok }, "the flags byte"},
		{"name", func(v any) bool { return v == "Test key" }, `"Test key"`},
		{"rp_id", func(v any) bool { return v == "localhost" }, "localhost"},
		{"created_at", func(v any) bool { s, _ := v.(string); return s != "" }, "a time"},
		{"last_used_at", func(v any) bool { s, _ := v.(string); return s != "" }, "a time (it was used)"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			v, ok := rec[tc.field]
			if !ok || !tc.ok(v) {
				t.Errorf("record field %s = %v (present %v), want %s", tc.field, v, ok, tc.want)
			}
		})
	}
	d, err := a.key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for field := range rec {
		if strings.Contains(strings.ToLower(field), "private") || strings.Contains(strings.ToLower(field), "secret") {
			t.Errorf("record has a field %q", field)
		}
	}
	for _, enc := range []string{base64.StdEncoding.EncodeToString(d), b64.EncodeToString(d)} {
		if strings.Contains(raw[id], enc) {
			t.Errorf("record holds the private key")
		}
	}
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestPasskeyKeysGoWithTheUser: deleting the user (server user delete)
// or resetting its factors (server user mfa reset) leaves no passkey, no
// WebAuthn handle and no handle lookup in Redis, and the passkey then
// signs nobody in.
func TestPasskeyKeysGoWithTheUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context, s *Service, user string) error
	}{
		{"user delete", func(ctx context.Context, s *Service, user string) error {
			_, err := s.DeleteUser(ctx, user)
			return err
		}},
		{"mfa reset", func(ctx context.Context, s *Service, user string) error {
			_, err := s.ResetFactors(ctx, user)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.addUser(t, "bob", "correct horse battery staple")
			a := f.addPasskey(t, "bob", "correct horse battery staple")
			keys := []string{"user:{bob}:passkeys", "user:{bob}:webauthn", "passkey-user:{" + b64.EncodeToString(a.handle) + "}"}
			if got := f.exists(t, keys...); slices.Contains(got, false) {
				t.Fatalf("before %s: EXISTS %q = %v, want all", tc.name, keys, got)
			}
			if err := tc.do(context.Background(), f.svc, "bob"); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := f.exists(t, keys...); slices.Contains(got, true) {
				t.Errorf("after %s: EXISTS %q = %v, want none", tc.name, keys, got)
			}
			ctx, err := f.sessions.Load(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			token := ceremonyToken(t)
			opts, err := f.svc.BeginPasskeySignIn(ctx, testRP, token, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.PasskeySignIn(ctx, LoginRequest{IP: netip.MustParseAddr("192.0.2.2"), Credential: a.get(t, opts), Ceremony: token}); err == nil {
				t.Errorf("after %s the passkey still signs in", tc.name)
			}
		})
	}
}
