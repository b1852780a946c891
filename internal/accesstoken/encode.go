package accesstoken

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the claims as JSON, byte for byte what json.Marshal
// writes for them (FuzzAppendJSON holds it to that), without reflection
// and without an allocation of its own: signing a token is on every
// login and refresh.
func (c *Claims) AppendJSON(b []byte) []byte {
	b = append(b, `{"iss":`...)
	b = appendString(b, c.Issuer)
	if len(c.Audience) > 0 {
		b = append(b, `,"aud":`...)
		if len(c.Audience) == 1 {
			b = appendString(b, c.Audience[0])
		} else {
			b = appendStrings(b, c.Audience)
		}
	}
	if c.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendString(b, c.ClientID)
	}
	b = append(b, `,"sub":`...)
	b = appendString(b, c.Subject)
	b = append(b, `,"sid":`...)
	b = appendString(b, c.SessionID)
	b = append(b, `,"jti":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"iat":`...)
	b = c.IssuedAt.appendJSON(b)
	b = append(b, `,"exp":`...)
	b = c.ExpiresAt.appendJSON(b)
	b = append(b, `,"role":`...)
	b = appendString(b, c.Role)
	b = append(b, `,"auth_time":`...)
	b = strconv.AppendInt(b, c.AuthTime, 10)
	if len(c.Permissions) > 0 {
		b = append(b, `,"permissions":`...)
		b = appendStrings(b, c.Permissions)
	}
	if len(c.AMR) > 0 {
		b = append(b, `,"amr":`...)
		b = appendStrings(b, c.AMR)
	}
	if c.ACR != "" {
		b = append(b, `,"acr":`...)
		b = appendString(b, c.ACR)
	}
	if c.Confirmation != nil {
		b = append(b, `,"cnf":{"jkt":`...)
		b = appendString(b, c.Confirmation.JKT)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSON is MarshalJSON without the allocation (and, before 1970,
// where MarshalJSON's output is not a number, a valid negative one).
func (d NumericDate) appendJSON(b []byte) []byte {
	us := d.UnixMicro()
	if us < 0 {
		b, us = append(b, '-'), -us
	}
	b = strconv.AppendInt(b, us/1e6, 10)
	if frac := us % 1e6; frac != 0 {
		b = append(b, '.')
		for div := int64(1e5); div > 0; div /= 10 {
			b = append(b, byte('0'+frac/div%10))
		}
	}
	return b
}

func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does by default: HTML-safe
// (<, > and & escaped), U+2028 and U+2029 escaped, invalid UTF-8 replaced
// by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
