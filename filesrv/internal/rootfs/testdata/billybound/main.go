// Command billybound shows go-billy v5.9.2's bound-mode symlink bug on the
// folder given as its argument, which must hold a file "target", a symlink
// "link" to it and a dangling symlink "dangling". It prints one line per
// step; rootfs's TestBillyBoundOSRemovesSymlinkTarget runs it. It is a
// module of its own so the appliance's go.mod needs no dependency of
// go-billy's osfs.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
)

func main() {
	dir := os.Args[1]
	bound := osfs.New(dir, osfs.WithBoundOS())
	fmt.Printf("remove link: %v\n", bound.Remove("link"))
	_, err := os.Lstat(filepath.Join(dir, "target"))
	fmt.Printf("target after: %v\n", err)
	fmt.Printf("remove dangling: %v\n", bound.Remove("dangling"))
}
