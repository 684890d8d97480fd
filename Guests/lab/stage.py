#!/usr/bin/env python3
"""Copies programs and data out of dpkg -x'ed ppc64el package trees into an initramfs stage,
with every shared library they need (DT_NEEDED, followed recursively), in a merged-/usr layout
(lib -> usr/lib, lib64 -> usr/lib64, libraries under usr/lib/powerpc64le-linux-gnu).

Usage: stage.py STAGE TREES_FILE ROOTS_FILE
  TREES_FILE: one unpacked package tree per line.
  ROOTS_FILE: one path per line, relative to a tree root (a file, a symlink or a directory,
  taken whole). A leading '?' marks a root as optional: left out, with a note, when it is
  missing or needs a library no tree has. Lines starting with '#' are comments.
Exit 0: staged; 2: a required root or library is missing (named on stderr)."""
import os, shutil, struct, sys

LIBDIRS = ("usr/lib/powerpc64le-linux-gnu", "usr/lib64", "usr/lib")


def merged(rel):
    """Path in the merged-/usr stage for a path in a package tree."""
    for top in ("lib/", "lib64/"):
        if rel.startswith(top) or rel == top[:-1]:
            return "usr/" + rel
    return rel


def needed(path):
    """DT_NEEDED names of an ELF file (64-bit little or big endian), [] for anything else."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return []
    e = "<" if data[5] == 1 else ">"
    phoff, = struct.unpack_from(e + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(e + "HH", data, 0x36)
    loads, dyn = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(e + "IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return []
    strtab, names = None, []
    for off in range(dyn[0], dyn[0] + dyn[1], 16):
        tag, val = struct.unpack_from(e + "qQ", data, off)
        if tag == 0:
            break
        if tag == 5:
            strtab = val
        elif tag == 1:
            names.append(val)
    if strtab is None:
        return []
    for vaddr, offset, size in loads:  # DT_STRTAB is a virtual address
        if vaddr <= strtab < vaddr + size:
            strtab = strtab - vaddr + offset
            break
    return [data[strtab + n:data.index(b"\0", strtab + n)].decode() for n in names]


def main():
    stage, trees_file, roots_file = sys.argv[1:4]
    trees = [l.strip() for l in open(trees_file) if l.strip()]
    # Every path of every tree, in the stage's layout -> (tree, path in the tree).
    index = {}
    for t in trees:
        for dirpath, dirnames, filenames in os.walk(t):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, t)
                if rel == ".done":
                    continue
                index.setdefault(merged(rel), (t, rel))
    copied, sonames_done, missing = set(), set(), []

    def copy(rel, why):
        """Copies stage path rel (following a symlink chain inside the trees); returns False if absent."""
        if rel in copied:
            return True
        src = index.get(rel)
        if src is None:
            return False
        copied.add(rel)
        sp = os.path.join(*src)
        dp = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(dp), exist_ok=True)
        if os.path.islink(sp):
            target = os.readlink(sp)
            if os.path.lexists(dp):
                os.unlink(dp)
            os.symlink(target, dp)
            tgt = os.path.normpath(os.path.join(os.path.dirname(rel), target)) if not target.startswith("/") \
                else merged(target.lstrip("/"))
            if not copy(merged(tgt), why):
                missing.append(f"{tgt} (symlink target of {rel})")
            return True
        if os.path.isdir(sp):
            os.makedirs(dp, exist_ok=True)
            for n in sorted(os.listdir(sp)):
                copy(os.path.join(rel, n), why)
            return True
        shutil.copy2(sp, dp)
        for so in needed(sp):
            lib(so, rel)
        return True

    def lib(so, user):
        if so in sonames_done:
            return
        for d in LIBDIRS:
            if copy(f"{d}/{so}", user):
                sonames_done.add(so)
                return
        missing.append(f"{so} (needed by {user})")

    for line in open(roots_file):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        optional = line.startswith("?")
        rel = merged(line.lstrip("?").strip("/"))
        before = len(missing)
        if not copy(rel, rel):
            (print(f"stage.py: note: optional {rel} not found, left out", file=sys.stderr) if optional
             else missing.append(f"{rel} (a root)"))
        elif optional and len(missing) > before:
            print(f"stage.py: note: optional {rel} needs {missing[before:]}, left out", file=sys.stderr)
            del missing[before:]
            p = os.path.join(stage, rel)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    for l, t in (("lib", "usr/lib"), ("lib64", "usr/lib64")):
        p = os.path.join(stage, l)
        if not os.path.lexists(p):
            os.symlink(t, p)
    if missing:
        print("stage.py: missing (no unpacked package has it):\n  " + "\n  ".join(sorted(set(missing))), file=sys.stderr)
        sys.exit(2)
    print(f"stage.py: {len(copied)} paths, {len(sonames_done)} libraries", file=sys.stderr)


if __name__ == "__main__":
    main()
