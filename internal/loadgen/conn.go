package loadgen

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds what a response may carry; a longer one is an error.
const maxBody = 1 << 20

// Conn is one virtual user's keep-alive HTTP/1.1 connection, used from that
// user's goroutine only: the request is written and the response parsed
// (by net/http's own http.ReadResponse) in the caller's goroutine.
//
// Why not http.Client: its transport hands every request to the
// connection's reader and writer goroutines and back, and at thousands of
// requests a second on two cores those hand-offs cost the load generator
// about 0.09 ms of CPU per refresh — as much as PostgreSQL spends on it —
// taken from the server being measured. A load generator should cost what
// wrk or pgbench costs: as little as it can.
type Conn struct {
	addr, host string
	prefix     string      // the base URL's path, before every request's
	tlsConfig  *tls.Config // nil for http
	timeout    time.Duration

	nc  net.Conn
	br  *bufio.Reader
	req []byte

	// Body is the last response's body, valid until the next Do.
	Body bytes.Buffer
}

// NewConn returns a connection to base (http:// or https://, with a path
// prefix if the server is mounted under one). It dials on first use, and
// again after any failure.
func NewConn(base string) (*Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("base URL %q: want scheme://host[:port][/path]", base)
	}
	c := &Conn{host: u.Host, prefix: strings.TrimRight(u.EscapedPath(), "/"), timeout: 30 * time.Second}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		c.tlsConfig = &tls.Config{ServerName: u.Hostname()}
	default:
		return nil, fmt.Errorf("base URL %q: scheme must be http or https", base)
	}
	c.addr = net.JoinHostPort(u.Hostname(), port)
	return c, nil
}

// Do sends one request (body as application/json when not nil, bearer as
// an Authorization header when not empty), reads the whole response into
// c.Body and returns its status code.
func (c *Conn) Do(method, path, bearer string, body []byte) (int, error) {
	status, err := c.do(method, path, bearer, body)
	if err != nil {
		c.Close() // a connection in an unknown state is not reused
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return status, nil
}

func (c *Conn) do(method, path, bearer string, body []byte) (int, error) {
	// The bearer comes from the server's answers: a line break in it must
	// not become a header of its own.
	for _, s := range [...]string{method, path, bearer} {
		if strings.ContainsAny(s, "\r\n") {
			return 0, errors.New("line break in the request line or a header")
		}
	}
	if c.nc == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	r := append(c.req[:0], method...)
	r = append(r, ' ')
	r = append(r, c.prefix...)
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, c.host...)
	r = append(r, "\r\nUser-Agent: gatehouse-loadgen\r\n"...)
	if bearer != "" {
		r = append(append(append(r, "Authorization: Bearer "...), bearer...), "\r\n"...)
	}
	if body != nil {
		r = append(r, "Content-Type: application/json\r\nContent-Length: "...)
		r = strconv.AppendInt(r, int64(len(body)), 10)
		r = append(r, "\r\n"...)
	}
	r = append(append(r, "\r\n"...), body...)
	c.req = r
	if err := c.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	if _, err := c.nc.Write(r); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	c.Body.Reset()
	n, err := c.Body.ReadFrom(io.LimitReader(res.Body, maxBody+1))
	res.Body.Close()
	if err != nil {
		return 0, err
	}
	if n > maxBody {
		return 0, errors.New("response body over 1 MiB")
	}
	if res.Close {
		c.Close()
	}
	return res.StatusCode, nil
}

func (c *Conn) dial() error {
	d := net.Dialer{Timeout: c.timeout}
	var nc net.Conn
	var err error
	if c.tlsConfig != nil {
		nc, err = tls.DialWithDialer(&d, "tcp", c.addr, c.tlsConfig)
	} else {
		nc, err = d.Dial("tcp", c.addr)
	}
	if err != nil {
		return err
	}
	c.nc, c.br = nc, bufio.NewReaderSize(nc, 8<<10)
	return nil
}

// Close closes the connection; the next Do dials a new one.
func (c *Conn) Close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.br = nil, nil
	}
}
