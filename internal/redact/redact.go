// Package redact keeps credentials out of logs and error messages.
//
// A PostgreSQL connection string (--db, GATEHOUSE_DB) carries the
// database password, and drivers echo connection strings in their errors.
// Two defences, both needed: String masks anything shaped like a credential
// (the password of a URL's userinfo, password=… pairs) wherever it appears;
// ReplaceAttr, installed in the server's slog handler, also masks the exact
// secrets of the configured DSN in every attribute of every log line, in
// whatever shape a library happens to print them.
package redact

import (
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every credential.
const Mask = "xxxxx"

var (
	// scheme://user:password@ — the password may hold anything but '@'
	// and whitespace (percent-encoded or not).
	urlPassword = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*@`)
	// password=… in key/value DSNs and query strings: quoted or bare.
	pairPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'"]+)`)
)

// String masks credential-shaped parts of s.
func String(s string) string {
	if !strings.Contains(s, "://") && !containsPassword(s) {
		return s // the common case: every log attribute passes here
	}
	s = urlPassword.ReplaceAllString(s, "${1}"+Mask+"@")
	return pairPassword.ReplaceAllString(s, "${1}"+Mask)
}

// containsPassword reports whether s contains "password" in any case,
// without allocating.
func containsPassword(s string) bool {
	const word = "password"
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i]|0x20 == 'p' && strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// Error is err with a masked message, still matching what err matches
// (errors.Is and errors.As see through it).
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Secrets returns the passwords a connection string carries (none for a
// file name): the userinfo password and any password query parameter.
func Secrets(dsn string) []string {
	var out []string
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return nil
	}
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p)
		if esc := url.PathEscape(p); esc != p {
			out = append(out, esc)
		}
	}
	for k, vs := range u.Query() {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			for _, v := range vs {
				if v != "" {
					out = append(out, v, url.QueryEscape(v))
				}
			}
		}
	}
	return out
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that masks credentials
// in string and error attributes, and the given secrets wherever they
// appear. Other kinds (numbers, times) cannot carry them.
func ReplaceAttr(secrets []string) func(groups []string, a slog.Attr) slog.Attr {
	mask := func(s string) string {
		for _, sec := range secrets {
			if len(sec) >= 3 { // shorter would mask ordinary text
				s = strings.ReplaceAll(s, sec, Mask)
			}
		}
		return String(s)
	}
	return func(_ []string, a slog.Attr) slog.Attr {
		switch a.Value.Kind() {
		case slog.KindString:
			a.Value = slog.StringValue(mask(a.Value.String()))
		case slog.KindAny:
			if err, ok := a.Value.Any().(error); ok {
				a.Value = slog.StringValue(mask(err.Error()))
			} else if s, ok := a.Value.Any().(interface{ String() string }); ok {
				a.Value = slog.StringValue(mask(s.String()))
			}
		}
		return a
	}
}
