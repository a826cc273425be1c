package nfs3

import (
	"context"
	"net/netip"
	"testing"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// A handle is 16 guessable bytes, so every call is checked against the
// client list of the export its handle names, not only MOUNT.
func TestClientListCheckedOnEveryCall(t *testing.T) {
	v := newEnv(t, func(_ *Config, e *export.Export) {
		e.Clients = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	root := v.rootFH()
	for _, tc := range []struct {
		name   string
		remote string
		want   uint32
	}{
		{"allowed client", "10.1.2.3:700", nfsOK},
		{"other client", "192.0.2.7:700", errAcces},
		{"other client over IPv6", "[2001:db8::1]:700", errAcces},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, proc := range []uint32{procGetattr, procAccess, procFsinfo, procReaddirplus} {
				w := oncrpc.NewWriter(nil)
				w.Opaque(root)
				switch proc {
				case procAccess:
					w.Uint32(0x3f)
				case procReaddirplus:
					w.Uint64(0)
					w.Fixed(make([]byte, 8))
					w.Uint32(4096)
					w.Uint32(8192)
				}
				c := &oncrpc.Call{XID: 1, Prog: Program, Vers: Version, Proc: proc, Sys: credRoot,
					Args: w.Bytes(), Remote: netip.MustParseAddrPort(tc.remote)}
				reply := oncrpc.NewWriter(nil)
				if stat := v.s.ServeRPC(context.Background(), c, reply); stat != oncrpc.Success {
					t.Fatalf("proc %d: accept status %d", proc, stat)
				}
				r := oncrpc.NewReader(reply.Bytes())
				if got := r.Uint32(); got != tc.want {
					t.Errorf("proc %d from %s: status %d, want %d", proc, tc.remote, got, tc.want)
				}
				if tc.want != nfsOK && (r.Len() != 4*failWords[proc] || r.Err() != nil) {
					t.Errorf("proc %d: failure body %d bytes, want %d", proc, r.Len(), 4*failWords[proc])
				}
			}
		})
	}
}
