"""Confining the child process that reads a file we did not make, with what Linux gives an
unprivileged process (no root, no namespaces, no new packages).

    die_with_parent  the child is killed when the process that started it dies (PR_SET_PDEATHSIG)
    confine          no new privileges; limits on CPU time, memory, open files and core dumps;
                     no file may grow (RLIMIT_FSIZE 0); and where the kernel has Landlock, a
                     read-only view of the file system and no TCP connect or bind

It is a set of limits, not a container: the child still sees every file its user may read, and
can still use UDP and UNIX sockets. Linux only; elsewhere the resource limits alone apply.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (new syscalls are unified)
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 2, 1 << 3
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
OPEN_FILES_MAX = 16  # the file being read, the interpreter's few; no room for more


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above: nobody waits for us
        os._exit(1)


def confine(cpu_s: int, memory_bytes: int) -> list[str]:
    """Apply every limit this system offers; the names of those applied."""
    applied = []
    for name, limit, value in (
        ("cpu", resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
        ("memory", resource.RLIMIT_AS, (memory_bytes, memory_bytes)),
        ("file size 0", resource.RLIMIT_FSIZE, (0, 0)),
        ("open files", resource.RLIMIT_NOFILE, (OPEN_FILES_MAX, OPEN_FILES_MAX)),
        ("no core", resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(limit, value)
        applied.append(name)
    if not sys.platform.startswith("linux"):
        return applied
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied.append("no new privileges")
    applied += _landlock(libc)
    return applied


def _landlock(libc) -> list[str]:
    """Read-only file system, no TCP: [] where the kernel has no Landlock."""
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return []
    fs_rights = FS_RIGHTS_BY_ABI[max(k for k in FS_RIGHTS_BY_ABI if k <= abi)]
    attr = _RulesetAttr(fs_rights, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else ctypes.sizeof(ctypes.c_uint64)
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        return []
    try:
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            rule = _PathBeneathAttr(FS_EXECUTE | FS_READ_FILE | FS_READ_DIR, root)
            if libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0):
                return []
        finally:
            os.close(root)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0):
            return []
    finally:
        os.close(ruleset)
    return ["read-only file system"] + (["no TCP"] if abi >= 4 else [])
