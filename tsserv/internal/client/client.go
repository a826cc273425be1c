// Package client is tsclnt, the timestamp service's client: the book
// chapter's tsTclnt and tsUclnt with one-shot mode for scripts.
package client

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options say where and how to reach the server.
type Options struct {
	Host    string        // host name or address; default localhost
	Port    int           // default 21567
	UDP     bool          // datagrams instead of a stream
	Unix    string        // a Unix socket path instead of host and port
	Family  string        // "", "4" or "6": force the IP version
	Timeout time.Duration // for connecting and for each reply
}

// Client talks to one server.
type Client struct {
	conn    net.Conn
	r       *bufio.Reader // stream replies
	local   string        // unixgram: our own socket file, removed on Close
	dgram   bool
	timeout time.Duration
	server  string
}

// MaxReply is the largest reply read.
const MaxReply = 1 << 20

// Dial connects to the server (for datagrams: prepares the socket).
func Dial(o Options) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	c := &Client{dgram: o.UDP, timeout: o.Timeout}
	var err error
	switch {
	case o.Unix != "" && o.UDP:
		c.server = o.Unix
		c.local = filepath.Join(os.TempDir(), fmt.Sprintf("tsclnt-%d-%d.sock", os.Getpid(), time.Now().UnixNano()))
		var uc *net.UnixConn
		uc, err = net.DialUnix("unixgram", &net.UnixAddr{Name: c.local, Net: "unixgram"},
			&net.UnixAddr{Name: o.Unix, Net: "unixgram"})
		if err == nil {
			c.conn = uc
			// The server may run as another user: it must be able to answer.
			if err = os.Chmod(c.local, 0o666); err != nil {
				uc.Close()
			}
		}
	case o.Unix != "":
		c.server = o.Unix
		c.conn, err = net.DialTimeout("unix", o.Unix, o.Timeout)
	default:
		network := "tcp"
		if o.UDP {
			network = "udp"
		}
		network += o.Family
		host := o.Host
		switch {
		case host != "":
		case o.Family == "6":
			host = "::1"
		case o.Family == "4":
			host = "127.0.0.1"
		default:
			host = "localhost"
		}
		port := o.Port
		if port == 0 {
			port = 21567
		}
		c.server = net.JoinHostPort(host, strconv.Itoa(port))
		c.conn, err = net.DialTimeout(network, c.server, o.Timeout)
	}
	if err != nil {
		c.cleanup()
		return nil, fmt.Errorf("connect to %s: %w", c.server, plain(err))
	}
	c.r = bufio.NewReader(c.conn)
	return c, nil
}

// Stamp sends msg and returns the server's reply, without its line end.
func (c *Client) Stamp(msg string) (string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if c.dgram {
		if _, err := c.conn.Write([]byte(msg)); err != nil {
			return "", fmt.Errorf("send to %s: %w", c.server, plain(err))
		}
		buf := make([]byte, 65536)
		n, err := c.conn.Read(buf)
		if err != nil {
			return "", c.replyError(err)
		}
		return string(buf[:n]), nil
	}
	if strings.ContainsAny(msg, "\r\n") {
		return "", errors.New("a message must be a single line")
	}
	if _, err := io.WriteString(c.conn, msg+"\n"); err != nil {
		return "", fmt.Errorf("send to %s: %w", c.server, plain(err))
	}
	var line []byte
	for {
		part, err := c.r.ReadSlice('\n')
		line = append(line, part...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) <= MaxReply {
				continue
			}
			return "", fmt.Errorf("reply from %s longer than %d bytes", c.server, MaxReply)
		}
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s closed the connection without a reply", c.server)
		}
		return "", c.replyError(err)
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func (c *Client) replyError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no reply from %s within %v (is tsserv running there?)", c.server, c.timeout)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s refused the message: nothing is listening there (is tsserv running?)", c.server)
	}
	return fmt.Errorf("read reply from %s: %w", c.server, plain(err))
}

// plain drops the operation wrappers that repeat the address.
func plain(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}

// Close closes the connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.cleanup()
	return err
}

func (c *Client) cleanup() {
	if c.local != "" {
		os.Remove(c.local)
	}
}

const usage = `Tsclnt sends messages to the appliance's timestamp service and prints the
replies, "[<time>] <message>".

Usage: tsclnt [flags] [host]

Without -m it reads lines at the "> " prompt and sends each one; an empty
line or end of input quits. host defaults to localhost.

Flags:
`

// Main runs tsclnt and returns its exit status: 0 on success, 1 when the
// server cannot be reached or does not answer, 2 for bad usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tsclnt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nExamples:\n  tsclnt appliance.local\n  tsclnt -u -m hello 192.0.2.10\n  tsclnt -unix /run/tsserv.sock\n")
	}
	var o Options
	var msg string
	var v4, v6 bool
	fs.IntVar(&o.Port, "p", 21567, "server port")
	fs.BoolVar(&o.UDP, "u", false, "use UDP (with -unix: a unixgram socket)")
	fs.StringVar(&o.Unix, "unix", "", "connect to the Unix socket at `path` instead of host and port")
	fs.BoolVar(&v4, "4", false, "use IPv4 only")
	fs.BoolVar(&v6, "6", false, "use IPv6 only")
	fs.StringVar(&msg, "m", "", "send this one `message`, print the reply and exit")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "time allowed to connect and for each reply")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 1 || v4 && v6 || o.Unix != "" && fs.NArg() > 0 {
		fmt.Fprintln(stderr, "tsclnt: give one host, or -unix, and at most one of -4 and -6 (see tsclnt -help)")
		return 2
	}
	o.Host = fs.Arg(0)
	if v4 {
		o.Family = "4"
	} else if v6 {
		o.Family = "6"
	}
	c, err := Dial(o)
	if err != nil {
		fmt.Fprintf(stderr, "tsclnt: %v\n", err)
		return 1
	}
	defer c.Close()
	if isSet(fs, "m") {
		reply, err := c.Stamp(msg)
		if err != nil {
			fmt.Fprintf(stderr, "tsclnt: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, reply)
		return 0
	}
	in := bufio.NewScanner(stdin)
	for {
		fmt.Fprint(stdout, "> ")
		if !in.Scan() || in.Text() == "" {
			return 0
		}
		reply, err := c.Stamp(in.Text())
		if err != nil {
			fmt.Fprintf(stderr, "tsclnt: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, reply)
	}
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
