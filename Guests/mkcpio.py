#!/usr/bin/env python3
"""Writes a gzip'ed cpio (newc) archive of a directory tree, every entry owned by root, plus
the device nodes an initramfs needs before /init runs (dev/console), without mknod or root.
Usage: mkcpio.py ROOTDIR OUTPUT.cpio.gz"""
import gzip, os, stat, sys

def entry(out, name, mode, data=b"", rdev=(0, 0), ino=[0]):
    ino[0] += 1
    namez = name.encode() + b"\0"
    hdr = "070701" + "".join("%08x" % v for v in (
        ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0))
    out.write(hdr.encode() + namez)
    out.write(b"\0" * ((4 - (110 + len(namez)) % 4) % 4))
    out.write(data)
    out.write(b"\0" * ((4 - len(data) % 4) % 4))

def main():
    root, dest = sys.argv[1], sys.argv[2]
    tmp = dest + ".tmp"
    # mtime 0 in the gzip header and sorted entries: the same inputs give the same bytes.
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        names = set()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            for n in sorted(dirnames + filenames):
                p = os.path.join(dirpath, n)
                name = os.path.normpath(os.path.join(rel, n))
                st = os.lstat(p)
                names.add(name)
                if stat.S_ISLNK(st.st_mode):
                    entry(out, name, stat.S_IFLNK | 0o777, os.readlink(p).encode())
                elif stat.S_ISDIR(st.st_mode):
                    entry(out, name, stat.S_IFDIR | (st.st_mode & 0o7777))
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        entry(out, name, stat.S_IFREG | (st.st_mode & 0o7777), f.read())
        if "dev" not in names:
            entry(out, "dev", stat.S_IFDIR | 0o755)
        entry(out, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        entry(out, "TRAILER!!!", 0)
    os.replace(tmp, dest)

if __name__ == "__main__":
    main()
