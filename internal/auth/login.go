package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// The login use case has one owner, this file: the password step, the
// second step, the throttle, the device cookie and then the session. The
// login form, the JSON API, re-authentication and the step-up page all
// call it the same way; none of them brokers an identity between auth and
// session.

// ErrSecondFactorRequired refuses an API login whose password was right
// for a user with a second factor, sent without a code: nothing was
// started, and the script must send "totp" (or "recovery_code") too.
var ErrSecondFactorRequired = errors.New("second factor required")

// ErrInvalidCode refuses a second step whose code was wrong, already used
// or malformed. One answer for every kind, as for passwords.
var ErrInvalidCode = errors.New("invalid verification code")

// ErrPendingExpired means the browser's pending two-step login is gone:
// it expired, was finished, failed too often, or never existed. The user
// starts again with the password.
var ErrPendingExpired = errors.New("pending login expired")

// ErrEnrolmentRequired refuses an API login under REQUIRE_TWO_FACTOR for
// a user who has no second factor yet: they set one up in a browser
// first.
var ErrEnrolmentRequired = errors.New("second factor enrolment required")

// PendingLoginLifetime is how long a browser has for the second step
// after a right password.
const PendingLoginLifetime = 5 * time.Minute

// maxPendingAttempts is how many codes one pending login may try before
// it ends and the password must be given again: each new password costs
// an argon2id hash and counts against the throttle.
const maxPendingAttempts = 5

// LoginRequest is one login: a password, and for the API a second-factor
// code in the same request.
type LoginRequest struct {
	Username string
	Password string
	// Code is a second-factor code sent with the password (the API): an
	// authenticator app's code or a recovery code. The form leaves it
	// empty and gets a pending login instead.
	Code string
	// IP is the client address (after TRUSTED_PROXIES).
	IP netip.Addr
	// DeviceCookies are the values of every device cookie the request
	// carried; the first valid one for the user makes the attempt a known
	// device's (see throttle.go).
	DeviceCookies []string
	// UserAgent is the client's User-Agent header, kept in the session.
	UserAgent string
	// Remember makes the session cookie outlive the browser session.
	Remember bool
	// Credential is a passkey's answer (the JSON of the browser's
	// PublicKeyCredential.toJSON()) in place of a code, and Ceremony the
	// browser's ceremony token it answers under (see passkeys.go).
	Credential []byte
	Ceremony   string
}

// DeviceCookie is a device cookie value and when it stops counting.
type DeviceCookie struct {
	Value   string
	Expires time.Time
}

// LoginResult is what a login that was not refused did.
type LoginResult struct {
	// User is the canonical name.
	User string
	// Methods are how the user authenticated (session.MethodPassword...).
	Methods []string
	// SecondMethod names the second step's method for logs and metrics:
	// "totp" or "recovery"; "" without one.
	SecondMethod string
	// Pending is set when the password was right and a second step is
	// due: no session was started, and the browser keeps this token (a
	// cookie) for SecondStep.
	Pending string
	// PendingExpires is when Pending stops working.
	PendingExpires time.Time
	// Device is a fresh device cookie for the user, set on every
	// completed login (and not on a pending one).
	Device DeviceCookie
	// MustEnrol is set under REQUIRE_TWO_FACTOR for a user without a
	// second factor: the session started, but it serves only the
	// enrolment pages until one is set up.
	MustEnrol bool
	// RecoveryLeft is how many recovery codes remain after one was used.
	RecoveryLeft int
}

// Login is a browser's login: the password step under the throttle and,
// for a user with a second factor, a pending login (Pending set, no
// session) that SecondStep finishes. Without a second factor it starts
// the session of the request in ctx (loaded by session.Manager.Load) at
// once. Errors: ErrInvalidCredentials, *ThrottledError, ErrBusy,
// session.ErrLoginRaced as ErrInvalidCredentials, or one wrapping
// store.ErrUnavailable.
func (s *Service) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	who, second, err := s.passwordStep(ctx, req)
	if err != nil {
		return LoginResult{}, err
	}
	if second {
		return s.startPending(ctx, who, req.Remember)
	}
	res, err := s.finish(ctx, who, req, nil, "", 0)
	if err != nil {
		return LoginResult{}, err
	}
	res.MustEnrol = s.sessions.RequireTwoFactor()
	return res, nil
}

// LoginAPI is a script's login: the password and, for a user with a
// second factor, its code in the same request (ErrSecondFactorRequired
// without one, ErrInvalidCode when wrong). It starts an API session and
// returns its bearer token and record. Under REQUIRE_TWO_FACTOR a user
// without a second factor is refused (ErrEnrolmentRequired).
func (s *Service) LoginAPI(ctx context.Context, req LoginRequest) (string, session.Record, LoginResult, error) {
	who, second, err := s.passwordStep(ctx, req)
	if err != nil {
		return "", session.Record{}, LoginResult{}, err
	}
	methods := []string{session.MethodPassword}
	var (
		method string
		left   int
	)
	switch {
	case second && req.Code == "":
		return "", session.Record{}, LoginResult{}, ErrSecondFactorRequired
	case second:
		method, left, err = s.codeStep(ctx, who.Name, req.Code, req.IP, req.DeviceCookies)
		if err != nil {
			return "", session.Record{}, LoginResult{}, err
		}
		methods = append(methods, session.MethodOTP)
	case s.sessions.RequireTwoFactor():
		return "", session.Record{}, LoginResult{}, ErrEnrolmentRequired
	}
	device, err := s.deviceCookie(who)
	if err != nil {
		return "", session.Record{}, LoginResult{}, err
	}
	token, rec, err := s.sessions.StartAPI(ctx, session.Login{User: who.Name, Stamp: who.Stamp, IP: req.IP.String(), UserAgent: req.UserAgent, Methods: methods})
	if errors.Is(err, session.ErrLoginRaced) {
		err = ErrInvalidCredentials
	}
	if err != nil {
		return "", session.Record{}, LoginResult{}, err
	}
	res := LoginResult{User: who.Name, Methods: methods, SecondMethod: method, Device: device, RecoveryLeft: left}
	_, known := s.knownDevice(who.account(), req.DeviceCookies)
	s.noteSignIn(ctx, activity.APITokenCreated, res, known, rec.ID)
	return token, rec, res, nil
}

// passwordStep checks the password under the throttle and reports
// whether the user has a second factor to prove next. For such a user the
// right password is not yet a success: the account's failures are not
// forgiven until the second step succeeds, so a thief who has the
// password cannot reset the budget of code guesses by logging in again.
func (s *Service) passwordStep(ctx context.Context, req LoginRequest) (Identity, bool, error) {
	// One read of the record serves the throttle (device epoch) and the
	// password check (hash).
	acct, err := s.account(ctx, req.Username)
	if err != nil {
		return Identity{}, false, err
	}
	g, err := s.admit(ctx, acct, req.IP, req.DeviceCookies)
	if err != nil {
		return Identity{}, false, err
	}
	who, err := s.authenticate(ctx, acct, req.Password)
	if err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			g.void(ctx) // not the user's failure
		}
		return Identity{}, false, err
	}
	second, err := s.HasSecondFactor(ctx, who.Name)
	if err != nil {
		g.void(ctx)
		return Identity{}, false, err
	}
	if second {
		g.void(ctx) // a right password is no failure, nor yet a success
		return who, true, nil
	}
	if err := g.succeed(ctx); err != nil {
		return Identity{}, false, err
	}
	return who, false, nil
}

// finish starts the browser session of a completed login and issues its
// device cookie.
func (s *Service) finish(ctx context.Context, who Identity, req LoginRequest, methods []string, second string, left int) (LoginResult, error) {
	if len(methods) == 0 {
		methods = []string{session.MethodPassword}
	}
	// Before the session, so that failing here leaves none behind.
	device, err := s.deviceCookie(who)
	if err != nil {
		return LoginResult{}, err
	}
	err = s.sessions.Start(ctx, session.Login{
		User: who.Name, Stamp: who.Stamp, IP: req.IP.String(), UserAgent: req.UserAgent,
		Remember: req.Remember, Methods: methods,
	})
	if errors.Is(err, session.ErrLoginRaced) {
		// Deleted or given a new password while this login ran: the
		// password it proved is no longer the account's.
		return LoginResult{}, ErrInvalidCredentials
	}
	if err != nil {
		return LoginResult{}, err
	}
	res := LoginResult{User: who.Name, Methods: methods, SecondMethod: second, Device: device, RecoveryLeft: left}
	_, known := s.knownDevice(who.account(), req.DeviceCookies)
	s.noteSignIn(ctx, activity.SignIn, res, known, "")
	return res, nil
}

// account is who as the throttle knows an account: the device epoch the
// login read, to tell a known device by.
func (who Identity) account() account {
	return account{name: who.Name, valid: true, found: true, user: store.User{Name: who.Name, DeviceEpoch: who.deviceEpoch}}
}

// deviceCookie issues the device cookie of who's completed login, at the
// device epoch the login read.
func (s *Service) deviceCookie(who Identity) (DeviceCookie, error) {
	v, exp, err := s.devices.issue(who.Name, who.deviceEpoch, time.Now())
	if err != nil {
		return DeviceCookie{}, fmt.Errorf("login of %q: %w", who.Name, err)
	}
	return DeviceCookie{Value: v, Expires: exp}, nil
}

// pendingLogin is a password step waiting for its second step, kept in
// Redis under the hash of the browser's pending token. It holds no
// secret: the password hash it was granted for is kept as a digest, and
// compared with the account's hash when the login finishes.
type pendingLogin struct {
	User       string    `json:"user"`
	StampSum   string    `json:"stamp_sha256"`
	Remember   bool      `json:"remember"`
	Attempts   int       `json:"attempts"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	SecondStep []string  `json:"methods"`
}

func stampSum(stamp string) string {
	sum := sha256.Sum256([]byte("loginsvc pending stamp\x00" + stamp))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// pendingKey is what the store keeps a pending login under: a hash of
// the browser's token, so a Redis reader cannot finish someone's login.
func pendingKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidPendingToken reports whether s has the shape of a pending-login
// token, so junk from a cookie is refused before it reaches Redis.
func ValidPendingToken(s string) bool { return session.ValidToken(s) }

func (s *Service) startPending(ctx context.Context, who Identity, remember bool) (LoginResult, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return LoginResult{}, fmt.Errorf("pending login of %q: %w", who.Name, err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:]) // a session token's shape
	now := time.Now().UTC()
	p := pendingLogin{User: who.Name, StampSum: stampSum(who.Stamp), Remember: remember, CreatedAt: now, ExpiresAt: now.Add(PendingLoginLifetime)}
	b, err := json.Marshal(p)
	if err != nil {
		return LoginResult{}, fmt.Errorf("pending login of %q: %w", who.Name, err)
	}
	if err := s.factors.PutPending(ctx, pendingKey(token), b, PendingLoginLifetime); err != nil {
		return LoginResult{}, fmt.Errorf("pending login of %q: %w", who.Name, err)
	}
	return LoginResult{User: who.Name, Methods: []string{session.MethodPassword}, Pending: token, PendingExpires: p.ExpiresAt}, nil
}

// PendingUser returns the user a pending login is for, or
// ErrPendingExpired: the second-step page greets nobody by a name the
// browser did not prove a password for.
func (s *Service) PendingUser(ctx context.Context, token string) (string, error) {
	if !ValidPendingToken(token) {
		return "", ErrPendingExpired
	}
	b, ok, err := s.factors.Pending(ctx, pendingKey(token))
	if err != nil {
		return "", fmt.Errorf("pending login: %w", err)
	}
	var p pendingLogin
	if !ok || json.Unmarshal(b, &p) != nil {
		return "", ErrPendingExpired
	}
	return p.User, nil
}

// SecondStep finishes a pending login with a code (an authenticator
// app's, or a recovery code): the session of the request in ctx starts
// with methods pwd and otp. A wrong code counts as a failed login (the
// same throttle as passwords) and leaves the pending login for another
// try, up to maxPendingAttempts; the pending login is single use either
// way, so two replicas cannot both finish it.
func (s *Service) SecondStep(ctx context.Context, token string, req LoginRequest) (LoginResult, error) {
	if !ValidPendingToken(token) {
		return LoginResult{}, ErrPendingExpired
	}
	key := pendingKey(token)
	b, ok, err := s.factors.TakePending(ctx, key)
	if err != nil {
		return LoginResult{}, fmt.Errorf("second step: %w", err)
	}
	var p pendingLogin
	if !ok || json.Unmarshal(b, &p) != nil || !time.Now().Before(p.ExpiresAt) {
		return LoginResult{}, ErrPendingExpired
	}
	method, methods, left, err := s.secondProof(ctx, p.User, req, purposeSecond)
	if err != nil {
		// The pending login goes back for another try: after a wrong
		// answer up to maxPendingAttempts, after anything else (a
		// throttle, Redis) as it was, so the user waits rather than
		// starts over.
		if errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrInvalidPasskey) || errors.Is(err, ErrPasskeyCloned) || errors.Is(err, ErrFactorUnreadable) {
			p.Attempts++
		}
		if ttl := time.Until(p.ExpiresAt); p.Attempts < maxPendingAttempts && ttl > 0 {
			if b, merr := json.Marshal(p); merr == nil {
				if perr := s.factors.PutPending(ctx, key, b, ttl); perr != nil {
					return LoginResult{}, fmt.Errorf("second step: %w (and %w)", err, perr)
				}
			}
		}
		return LoginResult{}, err
	}
	u, err := s.users.Get(ctx, p.User)
	if errors.Is(err, store.ErrUserNotFound) || err == nil && stampSum(u.PasswordHash) != p.StampSum {
		// Deleted or given a new password since the password step.
		return LoginResult{}, ErrPendingExpired
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("second step: %w", err)
	}
	req.Remember = p.Remember
	return s.finish(ctx, Identity{Name: p.User, Stamp: u.PasswordHash, deviceEpoch: u.DeviceEpoch}, req, append([]string{session.MethodPassword}, methods...), method, left)
}

// secondProof checks the second step of user: a passkey's answer when
// the request carries one (for a ceremony begun for purpose), else a
// code. It returns the method's name for logs ("totp", "recovery",
// "passkey"), the methods it proves, and recovery codes left.
func (s *Service) secondProof(ctx context.Context, user string, req LoginRequest, purpose string) (string, []string, int, error) {
	if len(req.Credential) == 0 {
		method, left, err := s.codeStep(ctx, user, req.Code, req.IP, req.DeviceCookies)
		if err != nil {
			return "", nil, 0, err
		}
		return method, []string{session.MethodOTP}, left, nil
	}
	acct, err := s.accountOf(ctx, user, req.DeviceCookies)
	if err != nil {
		return "", nil, 0, err
	}
	g, err := s.admit(ctx, acct, req.IP, req.DeviceCookies)
	if err != nil {
		return "", nil, 0, err
	}
	_, methods, err := s.verifyPasskey(ctx, req, purpose, user)
	switch {
	case errors.Is(err, ErrInvalidPasskey), errors.Is(err, ErrPasskeyCloned):
		s.record(ctx, user, activity.SecondStepFailed, map[string]string{"method": SecondStepPasskey})
		return "", nil, 0, err // counted: a failed login
	case err != nil:
		g.void(ctx)
		return "", nil, 0, err
	}
	if err := g.succeed(ctx); err != nil {
		return "", nil, 0, err
	}
	return SecondStepPasskey, methods, 0, nil
}

// codeStep checks a second-factor code of user under the throttle. It
// returns the method that matched ("totp" or "recovery") and, for a
// recovery code, how many remain. A refused code is recorded here, so the
// form, step-up, re-authentication and the API record it alike.
func (s *Service) codeStep(ctx context.Context, user, code string, ip netip.Addr, devices []string) (string, int, error) {
	acct, err := s.accountOf(ctx, user, devices)
	if err != nil {
		return "", 0, err
	}
	g, err := s.admit(ctx, acct, ip, devices)
	if err != nil {
		return "", 0, err
	}
	method, left, err := s.checkCode(ctx, user, code)
	if errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrFactorUnreadable) {
		s.record(ctx, user, activity.SecondStepFailed, map[string]string{"method": "code"})
	}
	switch {
	case errors.Is(err, ErrInvalidCode):
		return "", 0, err // counted: a failed login
	case err != nil:
		g.void(ctx)
		return "", 0, err
	}
	if err := g.succeed(ctx); err != nil {
		return "", 0, err
	}
	return method, left, nil
}

// Reauthenticate is a full authentication of the logged-in user of ctx's
// session, before a sensitive action: the password and, if the user has a
// second factor, its code, under the same throttle as a login. It renews
// the session's auth_time and token (session.Manager.Elevate); it starts
// no new session.
func (s *Service) Reauthenticate(ctx context.Context, req LoginRequest) (LoginResult, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return LoginResult{}, ErrInvalidCredentials
	}
	req.Username = cur.User
	if len(req.Credential) > 0 && req.Password == "" {
		// A passkey alone: the device and the user's PIN or biometric,
		// a full authentication of its own.
		method, methods, _, err := s.secondProof(ctx, cur.User, req, purposeReauth)
		if err != nil {
			return LoginResult{}, err
		}
		u, err := s.users.Get(ctx, cur.User)
		if err != nil {
			return LoginResult{}, fmt.Errorf("re-authenticate: %w", err)
		}
		if err := s.elevate(ctx, methods, u.PasswordHash); err != nil {
			return LoginResult{}, err
		}
		s.noteElevated(ctx, cur.User, method, methods, 0)
		return LoginResult{User: cur.User, Methods: methods, SecondMethod: method}, nil
	}
	who, second, err := s.passwordStep(ctx, req)
	if err != nil {
		return LoginResult{}, err
	}
	methods := []string{session.MethodPassword}
	method, left := "", 0
	if second {
		if req.Code == "" {
			return LoginResult{}, ErrInvalidCode
		}
		var proven []string
		method, proven, left, err = s.secondProof(ctx, who.Name, req, purposeReauth)
		if err != nil {
			return LoginResult{}, err
		}
		methods = append(methods, proven...)
	}
	if err := s.elevate(ctx, methods, who.Stamp); err != nil {
		return LoginResult{}, err
	}
	s.noteElevated(ctx, who.Name, method, methods, left)
	return LoginResult{User: who.Name, Methods: methods, SecondMethod: method, RecoveryLeft: left}, nil
}

// StepUp adds a second factor to the logged-in session of ctx: the code
// alone, since the session already stands on the password. It is what an
// app in AUTH_TWO_FACTOR_HOSTS sends a one-factor session to.
func (s *Service) StepUp(ctx context.Context, req LoginRequest) (LoginResult, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return LoginResult{}, ErrInvalidCredentials
	}
	method, proven, left, err := s.secondProof(ctx, cur.User, req, purposeStepUp)
	if err != nil {
		return LoginResult{}, err
	}
	u, err := s.users.Get(ctx, cur.User)
	if err != nil {
		return LoginResult{}, fmt.Errorf("step up: %w", err)
	}
	methods := slices.Clone(cur.AMR)
	for _, m := range proven {
		if !slices.Contains(methods, m) {
			methods = append(methods, m)
		}
	}
	if err := s.elevate(ctx, methods, u.PasswordHash); err != nil {
		return LoginResult{}, err
	}
	s.noteElevated(ctx, cur.User, method, methods, left)
	return LoginResult{User: cur.User, Methods: methods, SecondMethod: method, RecoveryLeft: left}, nil
}

func (s *Service) elevate(ctx context.Context, methods []string, stamp string) error {
	err := s.sessions.Elevate(ctx, methods, stamp)
	if errors.Is(err, session.ErrLoginRaced) {
		return ErrInvalidCredentials
	}
	return err
}
