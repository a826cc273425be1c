// Printsrv is the appliance's IPP print server: IPP/1.1 and IPP/2.0 over
// HTTP (and IPPS) for lp, lpstat, cancel, ipptool and IPP Everywhere
// clients, with queues from its config that print into output trays. Run
// "printsrv -help" for its flags; configs/printsrv.toml documents its
// config file.
package main

import (
	"os"

	"example.com/appliance/printsrv/internal/server"
)

func main() {
	os.Exit(server.Main(os.Args[1:], os.Stderr, nil))
}
