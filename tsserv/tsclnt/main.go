// Tsclnt is the timestamp service's client, the book chapter's tsTclnt and
// tsUclnt: it sends each line typed at its "> " prompt, or the one message
// given with -m, and prints the server's "[<time>] <message>" reply. Run
// "tsclnt -help" for its flags.
package main

import (
	"os"

	"example.com/appliance/tsserv/internal/client"
)

func main() {
	os.Exit(client.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
