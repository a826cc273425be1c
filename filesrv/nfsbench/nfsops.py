#!/usr/bin/env python3
"""nfsbench's NFS client for small-file operations: libnfs (the library
behind libnfs-utils) through ctypes, one process over one mount, so every
server is driven by the same client. Written to a temp folder by nfsbench.

usage: nfsops.py EXPORT_URL OP ARGS...
  mkdir  REL                 create directory REL
  create REL_DIR COUNT BYTES create COUNT files f00000.. of BYTES bytes
  stat   REL_DIR COUNT       stat f00000.. (LOOKUPs + GETATTR each)
  rm     REL_DIR COUNT       unlink f00000..
  unlink REL                 unlink one file
  list   REL_DIR [TIMES]     read the directory TIMES times (default 1), with
                             libnfs's directory cache off, count entries (no . and ..)
  rmtree REL                 remove REL and everything below it
Prints one JSON object: op, count, seconds (after the mount), mount_seconds.
"""
import ctypes
import ctypes.util
import json
import os
import sys
import time


class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


class NfsDirent(ctypes.Structure):
    _fields_ = [("next", ctypes.c_void_p), ("name", ctypes.c_char_p), ("inode", ctypes.c_uint64),
                ("type", ctypes.c_uint32), ("mode", ctypes.c_uint32)]


NF3DIR = 2
VP = ctypes.c_void_p


def load():
    for name in ["libnfs.so.13", "libnfs.so.14", ctypes.util.find_library("nfs")]:
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name in ("libnfs.so.13", "libnfs.so.14")
        except OSError:
            continue
    raise SystemExit("nfsops: libnfs shared library not found (apt-get install libnfs13)")


LIB, OLD_WRITE = load()
LIB.nfs_init_context.restype = VP
LIB.nfs_destroy_context.argtypes = [VP]
LIB.nfs_destroy_context.restype = None
LIB.nfs_get_error.argtypes = [VP]
LIB.nfs_get_error.restype = ctypes.c_char_p
LIB.nfs_parse_url_dir.argtypes = [VP, ctypes.c_char_p]
LIB.nfs_parse_url_dir.restype = ctypes.POINTER(NfsUrl)
LIB.nfs_destroy_url.argtypes = [ctypes.POINTER(NfsUrl)]
LIB.nfs_destroy_url.restype = None
LIB.nfs_mount.argtypes = [VP, ctypes.c_char_p, ctypes.c_char_p]
for fn in ("nfs_mkdir", "nfs_rmdir", "nfs_unlink"):
    getattr(LIB, fn).argtypes = [VP, ctypes.c_char_p]
LIB.nfs_creat.argtypes = [VP, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(VP)]
if OLD_WRITE:
    LIB.nfs_write.argtypes = [VP, VP, ctypes.c_uint64, ctypes.c_char_p]
else:
    LIB.nfs_write.argtypes = [VP, VP, ctypes.c_char_p, ctypes.c_uint64]
LIB.nfs_close.argtypes = [VP, VP]
LIB.nfs_stat64.argtypes = [VP, ctypes.c_char_p, ctypes.c_void_p]
LIB.nfs_opendir.argtypes = [VP, ctypes.c_char_p, ctypes.POINTER(VP)]
LIB.nfs_readdir.argtypes = [VP, VP]
LIB.nfs_readdir.restype = ctypes.POINTER(NfsDirent)
LIB.nfs_closedir.argtypes = [VP, VP]
LIB.nfs_closedir.restype = None
LIB.nfs_set_dircache.argtypes = [VP, ctypes.c_int]
LIB.nfs_set_dircache.restype = None


class Nfs:
    def __init__(self, url):
        self.ctx = LIB.nfs_init_context()
        if not self.ctx:
            raise SystemExit("nfsops: nfs_init_context failed")
        u = LIB.nfs_parse_url_dir(self.ctx, url.encode())
        if not u:
            self.fail("parse url %s" % url)
        t0 = time.perf_counter()
        if LIB.nfs_mount(self.ctx, u.contents.server, u.contents.path) != 0:
            self.fail("mount %s" % url)
        self.mount_seconds = time.perf_counter() - t0
        LIB.nfs_destroy_url(u)
        self.st = ctypes.create_string_buffer(512)  # struct nfs_stat_64 is 17 x 8 bytes

    def fail(self, what):
        err = LIB.nfs_get_error(self.ctx)
        raise SystemExit("nfsops: %s failed: %s" % (what, err.decode(errors="replace") if err else "?"))

    @staticmethod
    def p(rel):
        return ("/" + rel.strip("/")).encode()

    def call(self, what, fn, *args):
        if fn(self.ctx, *args) != 0:
            self.fail(what)

    def create(self, rel, data):
        fh = VP()
        self.call("create " + rel, LIB.nfs_creat, self.p(rel), 0o644, ctypes.byref(fh))
        if data:
            n = (LIB.nfs_write(self.ctx, fh, len(data), data) if OLD_WRITE
                 else LIB.nfs_write(self.ctx, fh, data, len(data)))
            if n != len(data):
                self.fail("write " + rel)
        self.call("close " + rel, LIB.nfs_close, fh)

    def listdir(self, rel):
        d = VP()
        self.call("opendir " + rel, LIB.nfs_opendir, self.p(rel), ctypes.byref(d))
        out = []
        while True:
            e = LIB.nfs_readdir(self.ctx, d)
            if not e:
                break
            name = e.contents.name.decode(errors="surrogateescape")
            if name not in (".", ".."):
                out.append((name, e.contents.type))
        LIB.nfs_closedir(self.ctx, d)
        return out

    def rmtree(self, rel):
        n = 0
        for name, typ in self.listdir(rel):
            child = rel.rstrip("/") + "/" + name
            if typ == NF3DIR:
                n += self.rmtree(child)
            else:
                self.call("unlink " + child, LIB.nfs_unlink, self.p(child))
                n += 1
        self.call("rmdir " + rel, LIB.nfs_rmdir, self.p(rel))
        return n + 1


def names(d, count):
    return ["%s/f%05d" % (d, i) for i in range(count)]


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    url, op, args = argv[1], argv[2], argv[3:]
    nfs = Nfs(url)
    t0 = time.perf_counter()
    count = 1
    if op == "mkdir":
        nfs.call("mkdir " + args[0], LIB.nfs_mkdir, nfs.p(args[0]))
    elif op == "create":
        count, size = int(args[1]), int(args[2])
        data = os.urandom(size)
        for n in names(args[0], count):
            nfs.create(n, data)
    elif op == "stat":
        count = int(args[1])
        for n in names(args[0], count):
            nfs.call("stat " + n, LIB.nfs_stat64, nfs.p(n), nfs.st)
    elif op == "rm":
        count = int(args[1])
        for n in names(args[0], count):
            nfs.call("unlink " + n, LIB.nfs_unlink, nfs.p(n))
    elif op == "unlink":
        nfs.call("unlink " + args[0], LIB.nfs_unlink, nfs.p(args[0]))
    elif op == "list":
        # Every listing must reach the server: no client-side cache.
        LIB.nfs_set_dircache(nfs.ctx, 0)
        count = 0
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            count += len(nfs.listdir(args[0]))
    elif op == "rmtree":
        count = nfs.rmtree(args[0])
    else:
        sys.stderr.write(__doc__)
        return 2
    secs = time.perf_counter() - t0
    LIB.nfs_destroy_context(nfs.ctx)
    print(json.dumps({"op": op, "count": count, "seconds": round(secs, 6),
                      "mount_seconds": round(nfs.mount_seconds, 6)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
