// Filesrv is the appliance's NFSv3 file server: laptops mount its exports
// over TCP (NFS and MOUNT on one port) and find it through its
// portmapper. Run "filesrv -help" for its flags; configs/filesrv.toml
// documents its config file and docs/filesrv.md how to mount.
package main

import (
	"os"

	"example.com/appliance/filesrv/internal/server"
)

func main() {
	os.Exit(server.Main(os.Args[1:], os.Stderr, nil))
}
