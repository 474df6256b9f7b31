package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"loginsvc/internal/activity"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// Passkeys: WebAuthn discoverable credentials with user verification,
// through github.com/go-webauthn/webauthn. A passkey signs in alone (it is
// two factors: the device, unlocked by the user's PIN or biometric), or
// is the second step after a password. Ceremony state lives in Redis,
// single use, bound to the browser that began it, so any replica can
// finish a ceremony another began.

// ErrInvalidPasskey refuses a passkey ceremony that did not verify: a
// wrong or unknown credential, a forged or replayed assertion, one
// without user verification, or a ceremony that expired or was finished.
var ErrInvalidPasskey = errors.New("passkey not accepted")

// ErrPasskeyCloned refuses an assertion whose signature counter went
// backwards: two copies of the authenticator's key exist.
var ErrPasskeyCloned = errors.New("passkey signature counter went backwards")

// ErrPasskeysUnavailable means this request cannot run a ceremony: the
// relying party is unknown (an IP address as host, an origin not in
// WEBAUTHN_ORIGINS).
var ErrPasskeysUnavailable = errors.New("passkeys unavailable for this address")

// ceremonyLifetime is how long a browser has to answer a ceremony: the
// same as the timeout the options ask of the browser, with a margin.
const ceremonyLifetime = 5 * time.Minute

// maxPasskeyNameRunes bounds a passkey's name.
const maxPasskeyNameRunes = 64

// maxCredentialBytes bounds the JSON a browser sends back: an assertion
// or attestation is a few kilobytes.
const maxCredentialBytes = 16 << 10

// Purposes of a ceremony: what its answer may be used for.
const (
	purposeRegister = "register"
	purposeSignIn   = "sign-in"
	purposeSecond   = "second-step"
	purposeStepUp   = "step-up"
	purposeReauth   = "reauth"
)

// RelyingParty is where a ceremony runs: the RP ID (a registrable domain,
// never an IP address) and the origin the browser must report.
type RelyingParty struct {
	ID     string
	Origin string
}

// Passkey is one of a user's passkeys as the security page and the CLI
// show it.
type Passkey struct {
	// ID is the credential id, base64url: it names the passkey in forms.
	ID string
	// Name is the user's name for it ("Chrome on Linux").
	Name string
	// CreatedAt and LastUsedAt (zero until first used).
	CreatedAt, LastUsedAt time.Time
	// Synced reports a passkey its provider backs up to other devices
	// (backup eligible): it signs in as "swk", a device-bound one as
	// "hwk".
	Synced bool
	// AAGUID names the authenticator model.
	AAGUID string
}

// passkeyRecord is a passkey as Redis keeps it (user:{name}:passkeys):
// public data only, the private key never leaves the authenticator.
type passkeyRecord struct {
	Name              string    `json:"name"`
	CredentialID      []byte    `json:"credential_id"`
	PublicKey         []byte    `json:"public_key"`
	SignCount         uint32    `json:"sign_count"`
	AAGUID            []byte    `json:"aaguid,omitempty"`
	Transports        []string  `json:"transports,omitempty"`
	Flags             byte      `json:"flags"`
	BackupEligible    bool      `json:"backup_eligible"`
	BackupState       bool      `json:"backup_state"`
	AttestationType   string    `json:"attestation_type,omitempty"`
	AttestationFormat string    `json:"attestation_format,omitempty"`
	RPID              string    `json:"rp_id"`
	CreatedAt         time.Time `json:"created_at"`
	LastUsedAt        time.Time `json:"last_used_at,omitzero"`
}

func (p passkeyRecord) credential() webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for i, t := range p.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: p.CredentialID, PublicKey: p.PublicKey,
		AttestationType: p.AttestationType, AttestationFormat: p.AttestationFormat,
		Transport:     transports,
		Flags:         webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(p.Flags)),
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
}

func (p passkeyRecord) public(id string) Passkey {
	return Passkey{ID: id, Name: p.Name, CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt, Synced: p.BackupEligible, AAGUID: aaguidString(p.AAGUID)}
}

func aaguidString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// webauthnUser is a user as go-webauthn sees one: the random handle, the
// name, and the passkeys.
type webauthnUser struct {
	handle []byte
	name   string
	creds  []webauthn.Credential
}

func (u webauthnUser) WebAuthnID() []byte                         { return u.handle }
func (u webauthnUser) WebAuthnName() string                       { return u.name }
func (u webauthnUser) WebAuthnDisplayName() string                { return u.name }
func (u webauthnUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// ceremony is a ceremony's state between its options and its answer.
type ceremony struct {
	Purpose string               `json:"purpose"`
	User    string               `json:"user,omitempty"`
	Session webauthn.SessionData `json:"session"`
}

// ceremonyHash names a ceremony in Redis: the browser's token and the
// challenge, so a browser may have several ceremonies open (a passkey
// offered in the name field's autofill while the button starts another),
// and a Redis reader can finish none.
func ceremonyHash(token, challenge string) string {
	sum := sha256.Sum256([]byte("loginsvc webauthn ceremony\x00" + token + "\x00" + challenge))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidCeremonyToken reports whether s has the shape of a ceremony token
// (a session token's).
func ValidCeremonyToken(s string) bool { return session.ValidToken(s) }

func (s *Service) putCeremony(ctx context.Context, token string, c ceremony) error {
	if !ValidCeremonyToken(token) {
		return errors.New("passkey ceremony: malformed browser token")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("passkey ceremony: %w", err)
	}
	if err := s.factors.PutCeremony(ctx, ceremonyHash(token, c.Session.Challenge), b, ceremonyLifetime); err != nil {
		return fmt.Errorf("passkey ceremony: %w", err)
	}
	return nil
}

// takeCeremony ends the ceremony the answer's challenge names, which must
// have been begun by this browser (token) for purpose.
func (s *Service) takeCeremony(ctx context.Context, token, challenge, purpose string) (ceremony, error) {
	if !ValidCeremonyToken(token) || challenge == "" {
		return ceremony{}, ErrInvalidPasskey
	}
	b, ok, err := s.factors.TakeCeremony(ctx, ceremonyHash(token, challenge))
	if err != nil {
		return ceremony{}, fmt.Errorf("passkey ceremony: %w", err)
	}
	var c ceremony
	if !ok || json.Unmarshal(b, &c) != nil || c.Purpose != purpose || time.Now().After(c.Session.Expires) {
		return ceremony{}, ErrInvalidPasskey
	}
	return c, nil
}

// passkeysOf returns user's passkey records by id.
func (s *Service) passkeysOf(ctx context.Context, user string) (map[string]passkeyRecord, map[string]string, error) {
	raw, err := s.factors.Passkeys(ctx, user)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys of %q: %w", user, err)
	}
	out := make(map[string]passkeyRecord, len(raw))
	for id, v := range raw {
		var p passkeyRecord
		if json.Unmarshal([]byte(v), &p) == nil {
			out[id] = p
		}
	}
	return out, raw, nil
}

// Passkeys returns user's passkeys, newest first.
func (s *Service) Passkeys(ctx context.Context, user string) ([]Passkey, error) {
	recs, _, err := s.passkeysOf(ctx, user)
	if err != nil {
		return nil, err
	}
	list := make([]Passkey, 0, len(recs))
	for id, p := range recs {
		list = append(list, p.public(id))
	}
	slices.SortFunc(list, func(a, b Passkey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, nil
}

func (s *Service) webauthnUserOf(ctx context.Context, user string, recs map[string]passkeyRecord) (webauthnUser, error) {
	var candidate [32]byte
	if _, err := rand.Read(candidate[:]); err != nil {
		return webauthnUser{}, fmt.Errorf("webauthn handle: %w", err)
	}
	h, err := s.factors.WebAuthnHandle(ctx, user, base64.RawURLEncoding.EncodeToString(candidate[:]))
	if err != nil {
		return webauthnUser{}, fmt.Errorf("webauthn handle of %q: %w", user, err)
	}
	handle, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return webauthnUser{}, fmt.Errorf("webauthn handle of %q: stored handle is not base64url", user)
	}
	u := webauthnUser{handle: handle, name: user}
	for _, p := range recs {
		u.creds = append(u.creds, p.credential())
	}
	return u, nil
}

func (s *Service) relyingParty(rp RelyingParty) error {
	if rp.ID == "" || rp.Origin == "" {
		return ErrPasskeysUnavailable
	}
	return nil
}

// ceremonyWebAuthn is go-webauthn configured for rp, to begin a ceremony
// with: go-webauthn binds a ceremony to an origin (WithLoginOrigin,
// WithRegistrationOrigin) only when its configuration lists that origin,
// and the caller has already checked rp's. Finishing needs no such
// instance: the ceremony's session data carries its RP ID and origin.
func (s *Service) ceremonyWebAuthn(rp RelyingParty) (*webauthn.WebAuthn, error) {
	wa, err := webauthn.New(&webauthn.Config{
		RPID: rp.ID, RPDisplayName: s.issuer, RPOrigins: []string{rp.Origin}, Timeouts: s.webauthn.Config.Timeouts,
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn for %s: %w", rp.Origin, err)
	}
	return wa, nil
}

// BeginPasskeyRegistration returns the options (JSON, for the browser's
// PublicKeyCredential.parseCreationOptionsFromJSON) of a new passkey for
// the logged-in user of ctx: a discoverable credential with user
// verification required, excluding the user's existing ones. token is
// the browser's ceremony cookie.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, rp RelyingParty, token string) ([]byte, error) {
	if err := s.relyingParty(rp); err != nil {
		return nil, err
	}
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return nil, ErrInvalidCredentials
	}
	recs, _, err := s.passkeysOf(ctx, cur.User)
	if err != nil {
		return nil, err
	}
	u, err := s.webauthnUserOf(ctx, cur.User, recs)
	if err != nil {
		return nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(u.creds))
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	wa, err := s.ceremonyWebAuthn(rp)
	if err != nil {
		return nil, err
	}
	opts, sd, err := wa.BeginRegistration(u,
		webauthn.WithRegistrationRelyingPartyID(rp.ID), webauthn.WithRegistrationOrigin(rp.Origin),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithExclusions(exclude),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	if err := s.putCeremony(ctx, token, ceremony{Purpose: purposeRegister, User: cur.User, Session: *sd}); err != nil {
		return nil, err
	}
	return json.Marshal(opts)
}

// FinishPasskeyRegistration verifies the browser's answer (credential,
// the JSON of PublicKeyCredential.toJSON()) to a registration this
// browser began, and stores the passkey under name (a default from the
// caller when empty). Like the authenticator app it is a factor change:
// the user's other sessions end; a user who had no second factor gets
// recovery codes.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, rp RelyingParty, token string, credential []byte, name string) (Enrolled, error) {
	if err := s.relyingParty(rp); err != nil {
		return Enrolled{}, err
	}
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return Enrolled{}, ErrInvalidCredentials
	}
	if len(credential) == 0 || len(credential) > maxCredentialBytes {
		return Enrolled{}, ErrInvalidPasskey
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return Enrolled{}, ErrInvalidPasskey
	}
	c, err := s.takeCeremony(ctx, token, parsed.Response.CollectedClientData.Challenge, purposeRegister)
	if err != nil {
		return Enrolled{}, err
	}
	if c.User != cur.User {
		return Enrolled{}, ErrInvalidPasskey
	}
	recs, _, err := s.passkeysOf(ctx, cur.User)
	if err != nil {
		return Enrolled{}, err
	}
	u, err := s.webauthnUserOf(ctx, cur.User, recs)
	if err != nil {
		return Enrolled{}, err
	}
	cred, err := s.webauthn.CreateCredential(u, c.Session, parsed)
	if err != nil {
		return Enrolled{}, fmt.Errorf("%w: %w", ErrInvalidPasskey, err)
	}
	hadSecond, err := s.HasSecondFactor(ctx, cur.User)
	if err != nil {
		return Enrolled{}, err
	}
	now := time.Now().UTC()
	rec := passkeyRecord{
		Name: cleanPasskeyName(name), CredentialID: cred.ID, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID,
		Flags: byte(cred.Flags.ProtocolValue()), BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		AttestationType: cred.AttestationType, AttestationFormat: cred.AttestationFormat,
		RPID: c.Session.GetRelyingPartyID(rp.ID), CreatedAt: now,
	}
	for _, t := range cred.Transport {
		rec.Transports = append(rec.Transports, string(t))
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return Enrolled{}, fmt.Errorf("store passkey: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	if err := s.factors.AddPasskey(ctx, cur.User, id, string(b)); err != nil {
		if errors.Is(err, store.ErrPasskeyChanged) {
			return Enrolled{}, ErrInvalidPasskey
		}
		return Enrolled{}, fmt.Errorf("store passkey of %q: %w", cur.User, err)
	}
	var out Enrolled
	if !hadSecond {
		if _, has, err := s.factors.Recovery(ctx, cur.User); err != nil {
			return Enrolled{}, fmt.Errorf("store passkey of %q: %w", cur.User, err)
		} else if !has {
			if out.RecoveryCodes, err = s.newRecoveryCodes(ctx, cur.User); err != nil {
				return Enrolled{}, err
			}
		}
	}
	// The ceremony proved the key and its user verification, as the
	// app's first code does: the session now stands on them too.
	methods := slices.Clone(cur.AMR)
	for _, m := range passkeyMethods(rec, cred.Flags.ProtocolValue()) {
		if !slices.Contains(methods, m) {
			methods = append(methods, m)
		}
	}
	if out.Ended, err = s.afterFactorChange(ctx, cur, methods); err != nil {
		return Enrolled{}, err
	}
	s.noteFactorChange(ctx, activity.FactorAdded, SecondStepPasskey)
	return out, nil
}

// cleanPasskeyName is a name as typed, trimmed and bounded; the caller's
// default when empty.
func cleanPasskeyName(name string) string {
	name = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name))
	if utf8.RuneCountInString(name) > maxPasskeyNameRunes {
		name = string([]rune(name)[:maxPasskeyNameRunes])
	}
	if name == "" {
		name = "Passkey"
	}
	return name
}

// RenamePasskey renames the logged-in user's passkey id.
func (s *Service) RenamePasskey(ctx context.Context, id, name string) error {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return ErrInvalidCredentials
	}
	recs, raw, err := s.passkeysOf(ctx, cur.User)
	if err != nil {
		return err
	}
	p, ok := recs[id]
	if !ok {
		return ErrNotEnrolled
	}
	p.Name = cleanPasskeyName(name)
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("rename passkey: %w", err)
	}
	if err := s.factors.UpdatePasskey(ctx, cur.User, id, raw[id], string(b)); err != nil {
		return fmt.Errorf("rename passkey of %q: %w", cur.User, err)
	}
	return nil
}

// RemovePasskey removes the logged-in user's passkey id: its next
// sign-in is refused. A factor change: the user's other sessions end, and
// with the last second factor the recovery codes go too. It returns how
// many sessions ended.
func (s *Service) RemovePasskey(ctx context.Context, id string) (int, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return 0, ErrInvalidCredentials
	}
	removed, err := s.factors.DeletePasskey(ctx, cur.User, id)
	if err != nil {
		return 0, fmt.Errorf("remove passkey of %q: %w", cur.User, err)
	}
	if !removed {
		return 0, ErrNotEnrolled
	}
	return s.afterFactorRemoved(ctx, cur, SecondStepPasskey)
}

// BeginPasskeyLogin returns the options (JSON, for the browser's
// PublicKeyCredential.parseRequestOptionsFromJSON) of an assertion:
// purpose "sign-in" asks any discoverable passkey of this site (user is
// empty; conditional asks for the name field's autofill), the others ask
// one of user's passkeys. User verification is required.
func (s *Service) beginPasskeyLogin(ctx context.Context, rp RelyingParty, token, purpose, user string, conditional bool) ([]byte, error) {
	if err := s.relyingParty(rp); err != nil {
		return nil, err
	}
	wa, err := s.ceremonyWebAuthn(rp)
	if err != nil {
		return nil, err
	}
	opts := []webauthn.LoginOption{
		webauthn.WithLoginRelyingPartyID(rp.ID), webauthn.WithLoginOrigin(rp.Origin),
		webauthn.WithUserVerification(protocol.VerificationRequired),
	}
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
	)
	if user == "" {
		mediation := protocol.MediationDefault
		if conditional {
			mediation = protocol.MediationConditional
		}
		assertion, sd, err = wa.BeginDiscoverableMediatedLogin(mediation, opts...)
	} else {
		recs, _, perr := s.passkeysOf(ctx, user)
		if perr != nil {
			return nil, perr
		}
		if len(recs) == 0 {
			return nil, ErrNotEnrolled
		}
		u, uerr := s.webauthnUserOf(ctx, user, recs)
		if uerr != nil {
			return nil, uerr
		}
		assertion, sd, err = wa.BeginLogin(u, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("begin passkey assertion: %w", err)
	}
	if err := s.putCeremony(ctx, token, ceremony{Purpose: purpose, User: user, Session: *sd}); err != nil {
		return nil, err
	}
	return json.Marshal(assertion)
}

// BeginPasskeySignIn returns the options of a passkey sign-in without a
// name (discoverable credentials); conditional for the name field's
// autofill.
func (s *Service) BeginPasskeySignIn(ctx context.Context, rp RelyingParty, token string, conditional bool) ([]byte, error) {
	return s.beginPasskeyLogin(ctx, rp, token, purposeSignIn, "", conditional)
}

// BeginPasskeySecondStep returns the options of a passkey as the second
// step of the pending login pending.
func (s *Service) BeginPasskeySecondStep(ctx context.Context, rp RelyingParty, token, pending string) ([]byte, error) {
	user, err := s.PendingUser(ctx, pending)
	if err != nil {
		return nil, err
	}
	return s.beginPasskeyLogin(ctx, rp, token, purposeSecond, user, false)
}

// BeginPasskeyStepUp returns the options of a passkey for the logged-in
// user of ctx: reauth for a re-authentication, else a step-up.
func (s *Service) BeginPasskeyStepUp(ctx context.Context, rp RelyingParty, token string, reauth bool) ([]byte, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return nil, ErrInvalidCredentials
	}
	purpose := purposeStepUp
	if reauth {
		purpose = purposeReauth
	}
	return s.beginPasskeyLogin(ctx, rp, token, purpose, cur.User, false)
}

// passkeyMethods are the methods an assertion proves: a hardware-bound
// key ("hwk") or a synced one ("swk"), and "user" when the authenticator
// verified the user (required here, so always).
func passkeyMethods(rec passkeyRecord, flags protocol.AuthenticatorFlags) []string {
	m := []string{session.MethodHardwareKey}
	if rec.BackupEligible {
		m = []string{session.MethodSoftwareKey}
	}
	if flags.HasUserVerified() {
		m = append(m, session.MethodUser)
	}
	return m
}

// verifyPasskey checks an assertion (credential JSON) of a ceremony this
// browser began for purpose; user is who it must prove ("" for a
// discoverable sign-in, which names the user by the handle). It stores
// the new signature counter and last use, and returns the user and the
// methods proven.
func (s *Service) verifyPasskey(ctx context.Context, req LoginRequest, purpose, user string) (string, []string, error) {
	if len(req.Credential) == 0 || len(req.Credential) > maxCredentialBytes {
		return "", nil, ErrInvalidPasskey
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential)
	if err != nil {
		return "", nil, ErrInvalidPasskey
	}
	c, err := s.takeCeremony(ctx, req.Ceremony, parsed.Response.CollectedClientData.Challenge, purpose)
	if err != nil {
		return "", nil, err
	}
	if user != "" && c.User != user {
		return "", nil, ErrInvalidPasskey
	}
	if user == "" {
		handle := base64.RawURLEncoding.EncodeToString(parsed.Response.UserHandle)
		name, ok, err := s.factors.HandleUser(ctx, handle)
		if err != nil {
			return "", nil, fmt.Errorf("passkey sign-in: %w", err)
		}
		if !ok {
			return "", nil, ErrInvalidPasskey
		}
		user = name
	}
	recs, raw, err := s.passkeysOf(ctx, user)
	if err != nil {
		return "", nil, err
	}
	u, err := s.webauthnUserOf(ctx, user, recs)
	if err != nil {
		return "", nil, err
	}
	var cred *webauthn.Credential
	if c.User == "" {
		cred, err = s.webauthn.ValidateDiscoverableLogin(func(_, _ []byte) (webauthn.User, error) { return u, nil }, c.Session, parsed)
	} else {
		cred, err = s.webauthn.ValidateLogin(u, c.Session, parsed)
	}
	if err != nil {
		return user, nil, fmt.Errorf("%w: %w", ErrInvalidPasskey, err)
	}
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	rec, ok := recs[id]
	if !ok {
		return user, nil, ErrInvalidPasskey
	}
	if cred.Authenticator.CloneWarning {
		return user, nil, fmt.Errorf("passkey %s of %q: counter %d after %d: %w", id, user, parsed.Response.AuthenticatorData.Counter, rec.SignCount, ErrPasskeyCloned)
	}
	rec.SignCount = cred.Authenticator.SignCount
	rec.BackupState = cred.Flags.BackupState
	rec.LastUsedAt = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return user, nil, fmt.Errorf("update passkey: %w", err)
	}
	if err := s.factors.UpdatePasskey(ctx, user, id, raw[id], string(b)); err != nil {
		// Used at the same moment elsewhere (the counter moved) or
		// removed: this assertion does not count.
		if errors.Is(err, store.ErrPasskeyChanged) {
			return user, nil, ErrInvalidPasskey
		}
		return user, nil, fmt.Errorf("update passkey of %q: %w", user, err)
	}
	return user, passkeyMethods(rec, parsed.Response.AuthenticatorData.Flags), nil
}

// PasskeySignIn is a sign-in with a passkey alone (no name, no password):
// the session of ctx's request starts with the passkey's methods, two
// factors. Failures count against the client's address.
func (s *Service) PasskeySignIn(ctx context.Context, req LoginRequest) (LoginResult, error) {
	// The user is known only once the passkey is: the address alone is
	// counted.
	g, err := s.admit(ctx, account{}, req.IP, nil)
	if err != nil {
		return LoginResult{}, err
	}
	user, methods, err := s.verifyPasskey(ctx, req, purposeSignIn, "")
	if err != nil {
		if !errors.Is(err, ErrInvalidPasskey) && !errors.Is(err, ErrPasskeyCloned) {
			g.void(ctx)
		}
		return LoginResult{User: user}, err
	}
	u, err := s.users.Get(ctx, user)
	if errors.Is(err, store.ErrUserNotFound) {
		return LoginResult{}, ErrInvalidPasskey
	}
	if err != nil {
		g.void(ctx)
		return LoginResult{}, fmt.Errorf("passkey sign-in: %w", err)
	}
	if err := g.succeed(ctx); err != nil {
		return LoginResult{}, err
	}
	return s.finish(ctx, Identity{Name: user, Stamp: u.PasswordHash, deviceEpoch: u.DeviceEpoch}, req, methods, SecondStepPasskey, 0)
}

// SecondStepPasskey names a passkey as a second step in logs and metrics.
const SecondStepPasskey = "passkey"
