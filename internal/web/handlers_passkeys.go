package web

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"loginsvc/internal/auth"
)

// Passkeys in the browser: the ceremony options are fetched as JSON by
// /static/passkeys.js (no inline script: the CSP stays strict), the
// browser's answer comes back in a plain form post (field credential),
// and the server renders or redirects as for any form. Every page works
// without JavaScript; only the passkey buttons need it.

// ceremonyCookieBase names the cookie binding passkey ceremonies to this
// browser: a random token, whose hash with the ceremony's challenge names
// the state in Redis (auth.ceremonyHash).
const ceremonyCookieBase = "passkey_ceremony"

func (a *App) ceremonyCookieName() string {
	if a.cfg.CookieSecure {
		return "__Host-" + ceremonyCookieBase
	}
	return ceremonyCookieBase
}

// ceremonyToken returns the browser's ceremony token, making one (and
// its cookie) if it has none.
func (a *App) ceremonyToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(a.ceremonyCookieName()); err == nil && auth.ValidCeremonyToken(c.Value) {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: a.ceremonyCookieName(), Value: token, Path: "/", MaxAge: int((10 * time.Minute).Seconds()),
		HttpOnly: true, Secure: a.cfg.CookieSecure, SameSite: http.SameSiteStrictMode,
	})
	return token
}

// presentedCeremony is the ceremony token the browser sent, "" for none.
func (a *App) presentedCeremony(r *http.Request) string {
	if c, err := r.Cookie(a.ceremonyCookieName()); err == nil && auth.ValidCeremonyToken(c.Value) {
		return c.Value
	}
	return ""
}

// relyingParty is the relying party of a ceremony on r: WEBAUTHN_RP_ID
// (an origin of r's must then be in WEBAUTHN_ORIGINS, or on the RP ID or
// a subdomain of it when that is empty), or, without it, the host r
// reached. An IP address is never an RP ID: on one, passkeys are
// unavailable (the zero RelyingParty).
func (a *App) relyingParty(r *http.Request) auth.RelyingParty {
	scheme := "http"
	if r.TLS != nil || a.cfg.CookieSecure || a.trusted(parseAddr(r.RemoteAddr)) && strings.EqualFold(firstForwarded(r, "X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	host := strings.ToLower(r.Host)
	if host == "" || !validHost(host) {
		return auth.RelyingParty{}
	}
	origin := scheme + "://" + host
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	if id := a.cfg.WebAuthnRPID; id != "" {
		if len(a.cfg.WebAuthnOrigins) > 0 {
			if !slices.Contains(a.cfg.WebAuthnOrigins, origin) {
				return auth.RelyingParty{}
			}
		} else if name != id && !strings.HasSuffix(name, "."+id) {
			return auth.RelyingParty{}
		}
		return auth.RelyingParty{ID: id, Origin: origin}
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return auth.RelyingParty{}
	}
	return auth.RelyingParty{ID: name, Origin: origin}
}

func firstForwarded(r *http.Request, name string) string {
	v, _, _ := strings.Cut(r.Header.Get(name), ",")
	return strings.TrimSpace(v)
}

// passkeysHere reports whether r's page can offer passkeys at all.
func (a *App) passkeysHere(r *http.Request) bool { return a.relyingParty(r).ID != "" }

// writeOptions answers an options request: the JSON go-webauthn made, or
// a JSON error the script shows as "the passkey did not work".
func (a *App) writeOptions(w http.ResponseWriter, r *http.Request, opts []byte, err error) {
	switch {
	case err == nil:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(opts) //nolint:gosec // G705: JSON that go-webauthn marshalled, served as application/json, never HTML

	case errors.Is(err, auth.ErrPasskeysUnavailable), errors.Is(err, auth.ErrNotEnrolled):
		writeJSONError(w, http.StatusNotFound, codeNotFound)
	case errors.Is(err, auth.ErrPendingExpired), errors.Is(err, auth.ErrInvalidCredentials):
		writeJSONError(w, http.StatusUnauthorized, codeUnauthorized)
	default:
		a.serverError(w, r, err)
	}
}

// passkeySignInOptions serves POST /login/passkey/options: the options of
// a sign-in with any passkey of this site (?conditional=1 for the name
// field's autofill).
func (a *App) passkeySignInOptions(w http.ResponseWriter, r *http.Request) {
	opts, err := a.auth.BeginPasskeySignIn(r.Context(), a.relyingParty(r), a.ceremonyToken(w, r), r.URL.Query().Get("conditional") == "1")
	a.writeOptions(w, r, opts, err)
}

// passkeySignIn serves POST /login/passkey/ (credential, next, remember):
// a sign-in with a passkey alone.
func (a *App) passkeySignIn(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	next := r.PostForm.Get("next")
	req := a.passkeyRequest(r)
	res, err := a.auth.PasskeySignIn(r.Context(), req)
	if err != nil {
		a.refuse(w, r, stepPasskey, err, func(status int) {
			a.render(w, r, status, "login.html", loginPage{Error: msgInvalidPasskey, Pause: pauseOf(err, true), Next: a.nextOf(r, next), Passkeys: a.passkeysHere(r)})
		})
		return
	}
	a.loggedIn(w, r, stepPasskey, res, next)
}

// passkeyRequest is the auth request of a form carrying a passkey's
// answer.
func (a *App) passkeyRequest(r *http.Request) auth.LoginRequest {
	req := a.loginRequest(r, "", r.PostForm.Get("password"), r.PostForm.Get("code"))
	if c := r.PostForm.Get("credential"); c != "" {
		req.Credential = []byte(c)
		req.Ceremony = a.presentedCeremony(r)
	}
	return req
}

// secondStepPasskeyOptions serves POST /login/code/passkey/options: the
// options of a passkey as the second step of this browser's pending
// login.
func (a *App) secondStepPasskeyOptions(w http.ResponseWriter, r *http.Request) {
	opts, err := a.auth.BeginPasskeySecondStep(r.Context(), a.relyingParty(r), a.ceremonyToken(w, r), a.pendingToken(r))
	a.writeOptions(w, r, opts, err)
}

// stepUpPasskeyOptions serves POST /login/step-up/passkey/options and
// POST /reauth/passkey/options: a passkey of the logged-in user.
func (a *App) stepUpPasskeyOptions(w http.ResponseWriter, r *http.Request) {
	reauth := strings.HasPrefix(r.URL.Path, "/reauth/")
	opts, err := a.auth.BeginPasskeyStepUp(r.Context(), a.relyingParty(r), a.ceremonyToken(w, r), reauth)
	a.writeOptions(w, r, opts, err)
}

// passkeyRegistrationOptions serves POST /security/passkeys/options: the
// options of a new passkey for the logged-in user.
func (a *App) passkeyRegistrationOptions(w http.ResponseWriter, r *http.Request) {
	opts, err := a.auth.BeginPasskeyRegistration(r.Context(), a.relyingParty(r), a.ceremonyToken(w, r))
	a.writeOptions(w, r, opts, err)
}

// addPasskey serves POST /security/passkeys/ (credential, name): the
// browser's new passkey is checked and stored; the first second factor
// shows the recovery codes, as the authenticator app does.
func (a *App) addPasskey(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	ctx := r.Context()
	user := a.currentUser(ctx)
	out, err := a.auth.FinishPasskeyRegistration(ctx, a.relyingParty(r), a.presentedCeremony(r), []byte(r.PostForm.Get("credential")), r.PostForm.Get("name"))
	if errors.Is(err, auth.ErrInvalidPasskey) || errors.Is(err, auth.ErrPasskeysUnavailable) {
		a.log.Info("passkey not added", "user", user, "request_id", requestID(ctx), "err", err)
		a.setFlash(w, newFlash("passkey_failed", 0))
		http.Redirect(w, r, "/security/", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.cfg.Observer.SecondStep(auth.SecondStepPasskey, SecondStepSuccess)
	a.log.Info("second factor added", "user", user, "method", auth.SecondStepPasskey, "sessions_ended", out.Ended, "request_id", requestID(ctx))
	if len(out.RecoveryCodes) > 0 {
		a.render(w, r, http.StatusOK, "codes.html", codesPage{Codes: out.RecoveryCodes, Passkey: true, Ended: out.Ended, Next: a.nextOf(r, r.PostForm.Get("next"))})
		return
	}
	a.setFlash(w, newFlash("passkey_added", out.Ended))
	http.Redirect(w, r, "/security/", http.StatusSeeOther)
}

// renamePasskey serves POST /security/passkeys/{id}/rename (name).
func (a *App) renamePasskey(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	err := a.auth.RenamePasskey(r.Context(), r.PathValue("id"), r.PostForm.Get("name"))
	if err != nil && !errors.Is(err, auth.ErrNotEnrolled) {
		a.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, "/security/", http.StatusSeeOther)
}

// removePasskey serves POST /security/passkeys/{id}/remove: its next
// sign-in is refused, and the user's other sessions end.
func (a *App) removePasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ended, err := a.auth.RemovePasskey(ctx, r.PathValue("id"))
	if errors.Is(err, auth.ErrNotEnrolled) {
		http.Redirect(w, r, "/security/", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.log.Info("second factor removed", "user", a.currentUser(ctx), "method", auth.SecondStepPasskey, "sessions_ended", ended, "request_id", requestID(ctx))
	a.setFlash(w, newFlash("passkey_removed", ended))
	http.Redirect(w, r, "/security/", http.StatusSeeOther)
}
