package auth

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Time-based one-time passwords (RFC 6238) with the parameters every
// authenticator app understands: HMAC-SHA-1, 6 digits, 30-second steps.
// A code is accepted one step either side of now, for clocks that drift
// and people who type slowly; the step it matched is returned so that the
// caller can refuse it a second time (store.Factors.UseTOTPStep).

// TOTPPeriod is the length of one TOTP step.
const TOTPPeriod = 30 * time.Second

// totpDigits is the length of a code.
const totpDigits = 6

// TOTPKey is a new TOTP secret and how to hand it to an authenticator app.
type TOTPKey struct {
	// Secret is the shared secret in base32 without padding, as a person
	// types it (see GroupSecret) and as it is sealed for storage.
	Secret string
	// URI is the otpauth://totp/ URI that a QR code carries (TOTPQRPNG).
	URI string
}

// totpValidateOpts are the code parameters, the same for generating and
// checking; Skew is 0 because MatchTOTP walks the steps itself.
func totpValidateOpts() totp.ValidateOpts {
	return totp.ValidateOpts{
		Period:    uint(TOTPPeriod / time.Second),
		Skew:      0,
		Digits:    otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1,
	}
}

// NewTOTPSecret draws a 160-bit secret (RFC 4226's recommended length) for
// account at issuer; the issuer is what the app shows above the code.
func NewTOTPSecret(issuer, account string) (TOTPKey, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      uint(TOTPPeriod / time.Second),
		SecretSize:  20,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("new totp secret: %w", err)
	}
	return TOTPKey{Secret: k.Secret(), URI: k.URL()}, nil
}

// TOTPURI rebuilds the otpauth URI of a stored secret, as NewTOTPSecret
// built it, so the enrolment page can show the QR code again without
// storing the URI.
func TOTPURI(issuer, account, secret string) string {
	v := []struct{ k, v string }{ // sorted by key, as otp's encoder sorts
		{"algorithm", otp.AlgorithmSHA1.String()},
		{"digits", otp.DigitsSix.String()},
		{"issuer", issuer},
		{"period", strconv.Itoa(int(TOTPPeriod / time.Second))},
		{"secret", secret},
	}
	var q strings.Builder
	for i, kv := range v {
		if i > 0 {
			q.WriteByte('&')
		}
		// PathEscape, not QueryEscape: a space must be %20, not '+',
		// which some apps show literally (otp does the same).
		q.WriteString(kv.k + "=" + url.PathEscape(kv.v))
	}
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: q.String()}
	return u.String()
}

// TOTPQRPNG returns a size x size PNG of the QR code of uri (an otpauth
// URI from NewTOTPSecret or TOTPURI), for the enrolment page.
func TOTPQRPNG(uri string, size int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("totp qr code: size %d", size)
	}
	// The errors never quote uri: it holds the secret, and errors get
	// logged.
	k, err := otp.NewKeyFromURL(uri)
	if err != nil || k.Type() != "totp" {
		return nil, errors.New("totp qr code: not an otpauth://totp/ URI")
	}
	img, err := k.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("totp qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("totp qr code: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// GroupSecret writes secret in groups of four characters separated by
// spaces ("ABCD EFGH ..."), for a person copying it by hand; apps ignore
// the spaces.
func GroupSecret(secret string) string {
	var b strings.Builder
	for i := 0; i < len(secret); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(secret[i:min(i+4, len(secret))])
	}
	return b.String()
}

// TOTPStep is the RFC 6238 time step that t falls in.
func TOTPStep(t time.Time) int64 {
	return t.Unix() / int64(TOTPPeriod/time.Second)
}

// TOTPCode returns the code of secret at t, as the user's app shows it.
// Tests use it to play the phone.
func TOTPCode(secret string, t time.Time) (string, error) {
	code, err := totp.GenerateCodeCustom(secret, t, totpValidateOpts())
	if err != nil {
		return "", fmt.Errorf("totp code: %w", err)
	}
	return code, nil
}

// normalizeTOTPCode removes the spaces and dashes people type or paste
// ("123 456", "123-456") and reports whether what is left is exactly six
// ASCII digits.
func normalizeTOTPCode(code string) (string, bool) {
	code = strings.NewReplacer(" ", "", "-", "").Replace(code)
	if len(code) != totpDigits {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", false
		}
	}
	return code, true
}

// MatchTOTP reports whether code is secret's code for the step before now,
// now's step or the step after, and which step it matched. It does not
// know which steps were already used: the caller refuses a step at or
// below the last one accepted (store.Factors.UseTOTPStep), so a code
// overheard or phished cannot be replayed. A malformed secret matches
// nothing.
func MatchTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code, wellFormed := normalizeTOTPCode(code)
	if !wellFormed {
		return 0, false
	}
	current := TOTPStep(now)
	period := int64(TOTPPeriod / time.Second)
	matched := int64(0)
	// Every candidate is compared, in constant time, so the answer's
	// timing does not say which step was near. Should two steps share a
	// code, the later one is taken: it leaves less room for a replay.
	for s := current - 1; s <= current+1; s++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*period, 0), totpValidateOpts())
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched, ok = s, true
		}
	}
	return matched, ok
}
