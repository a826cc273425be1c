// Tsserv is the appliance's timestamp service, the book chapter's tsTserv
// and tsUserv as one daemon: every message a client sends over TCP, UDP or a
// Unix socket comes back as "[<time>] <message>". Run "tsserv -help" for its
// flags; configs/tsserv.toml documents its config file.
package main

import (
	"os"

	"example.com/appliance/tsserv/internal/server"
)

func main() {
	os.Exit(server.Main(os.Args[1:], os.Stderr, nil))
}
