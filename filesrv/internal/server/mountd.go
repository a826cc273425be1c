package server

import (
	"example.com/appliance/filesrv/internal/mountd"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// MOUNT's program number and the versions served: 3, the one NFSv3
// clients use (Linux, libnfs, macOS).
const mountProgram = mountd.Program

var mountVersions = []uint32{mountd.Version}

// registerMountd serves MOUNT on rpc.
func registerMountd(rpc *oncrpc.Server, h oncrpc.Handler) {
	for _, v := range mountVersions {
		rpc.Register(mountProgram, v, h)
	}
}
