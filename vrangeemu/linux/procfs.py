"""A traced address space seen through /proc/TGID: VMAs, locks, pagemap, vDSO.

The supervisor keeps one `ProcessMemory` per address space and reopens it
after exec (the files are bound to the mm they were opened on).
"""
import array
import errno
import os
import re

from .._native import ffi, lib
from ..model.vma import ANON, FILE, LOCKED, SHARED, SPECIAL, Vma
from .errors import check

PAGE_SHIFT = 12
PM_PRESENT = 1 << 63
PM_PFN_MASK = (1 << 55) - 1
_LATER = -2   # a /proc file not opened yet
_MAPS_LINE = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ (\S+):(\S+) (\d+)\s*(.*)")


def _kind_from_maps(perms, inode, name):
    if perms[3] == "s":
        return SHARED
    if int(inode):
        return FILE
    if name.startswith("[v"):   # [vdso], [vvar], [vsyscall]: VM_PFNMAP/VM_IO
        return SPECIAL
    return ANON


class ProcessMemory:
    """Read-only views of one address space. Close it when the space goes."""

    def __init__(self, tgid, bound=True):
        """`bound` False: open nothing yet (a space the native loop followed
        into being, see `bind`)."""
        self.tgid = tgid
        # Opened now and kept: the fds stay bound to this mm even when the
        # thread-group leader becomes a zombie (pthread_exit in main).
        self._maps = self._status = self._statm = self._pagemap = self._mem = _LATER
        self._query = ffi.new("struct vr_vma *")
        self._name = ffi.new("char[16]")
        self._has_query = True
        self._has_scan = True
        self._scan_out = ffi.new("uint64_t[]", 2 * 1024)   # more runs: `discardable`
        self._syscall_insn = None
        if bound:
            self.bind(tgid)

    @property
    def bound(self):
        """The files bound to the mm are open (or closed since)."""
        return self._maps != _LATER

    def bind(self, tid):
        """Open the files bound to the mm (maps, pagemap, mem) through task
        `tid`, which must be using this address space now: the program
        itself at its start, or a caller held in its first call.  Nothing
        reads them before (a space without a call has no range to purge).
        status and statm read the task each time: opened at their first use."""
        fds = []
        try:
            for name, flags in (("maps", os.O_RDONLY), ("pagemap", os.O_RDONLY),
                                ("mem", os.O_RDWR)):
                fds.append(os.open(f"/proc/{tid}/{name}", flags | os.O_CLOEXEC))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        self._maps, self._pagemap, self._mem = fds

    def close(self):
        for fd in (self._maps, self._status, self._statm, self._pagemap, self._mem):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._maps = self._status = self._statm = self._pagemap = self._mem = None

    @property
    def maps_fd(self):
        """The open /proc/TGID/maps (PROCMAP_QUERY), -1 before `bind` or once closed."""
        return -1 if self._maps is None or self._maps == _LATER else self._maps

    def _opened(self, name):
        """The fd of /proc/TGID/`name` (status or statm), opened on first use."""
        fd = getattr(self, f"_{name}")
        if fd == _LATER:
            try:
                fd = os.open(f"/proc/{self.tgid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                fd = -1   # gone: read as a gone process's file reads
            setattr(self, f"_{name}", fd)
        return fd

    @property
    def statm_fd(self):
        """The open /proc/TGID/statm (resident pages: `rss`), -1 once closed."""
        return -1 if self._statm is None else self._opened("statm")

    def rss(self):
        """Resident bytes of the process (VmRSS: anonymous, file and shmem,
        as /proc/TGID/statm counts them; one read of a few bytes), 0 if it
        is gone or its leader has exited."""
        try:
            return int(os.pread(self.statm_fd, 64, 0).split()[1]) << PAGE_SHIFT
        except (OSError, IndexError, ValueError, TypeError):
            return 0

    def anon_rss(self):
        """Resident anonymous bytes (RssAnon: statm's resident less its
        file and shmem pages), 0 if gone; cheaper than reading status."""
        try:
            fields = os.pread(self.statm_fd, 64, 0).split()
            return (int(fields[1]) - int(fields[2])) << PAGE_SHIFT
        except (OSError, IndexError, ValueError, TypeError):
            return 0

    # --- VMAs --------------------------------------------------------------
    def vmas(self, start, end):
        """VMAs meeting [start, end), clipped to it, in address order.

        Holes are simply absent.  Uses PROCMAP_QUERY (Linux 6.11+, one ioctl
        per VMA); older kernels fall back to parsing the maps text.
        """
        if self._has_query:
            try:
                return self._vmas_by_query(start, end)
            except OSError as exc:
                if exc.errno not in (errno.ENOTTY, errno.EINVAL):
                    raise
                self._has_query = False
        return self._vmas_by_text(start, end)

    def _vmas_by_query(self, start, end):
        out = []
        q = self._query
        addr = start
        while addr < end:
            rc = lib.vr_vma_query(self._maps, addr, q, ffi.NULL, 0)
            if rc == -errno.ENOENT:
                break
            if rc < 0:
                raise OSError(-rc, os.strerror(-rc))
            if q.vma_start >= end:
                break
            vma_start, vma_end = q.vma_start, q.vma_end
            if q.vma_flags & 8:
                kind = SHARED
            elif q.vma_page_size != 4096:
                kind = SPECIAL          # hugetlb (a hugetlbfs inode, but not a file to us)
            elif q.inode:
                kind = FILE
            elif not q.vma_flags & 2 and self._special_name(vma_start):
                kind = SPECIAL
            else:
                kind = ANON
            out.append(Vma(max(vma_start, start), min(vma_end, end), kind))
            addr = vma_end
        return out

    def protections(self, start, end):
        """[(start, end, prot)] of the mappings meeting [start, end), clipped,
        prot as mprotect takes it (PROT_READ 1 | PROT_WRITE 2 | PROT_EXEC 4)."""
        out = []
        if self._has_query:
            q = ffi.new("struct vr_vma *")
            at = start
            while at < end and lib.vr_vma_query(self._maps, at, q, ffi.NULL, 0) == 0:
                if q.vma_start >= end:
                    break
                out.append((max(q.vma_start, start), min(q.vma_end, end), q.vma_flags & 7))
                at = q.vma_end
            return out
        for m in self._maps_lines():
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            if lo < end and hi > start:
                perms = m.group(3)
                prot = (perms[0] == "r") | (perms[1] == "w") << 1 | (perms[2] == "x") << 2
                out.append((max(lo, start), min(hi, end), prot))
        return out

    def writable(self, addr, n):
        """Every page of [addr, addr + n) is mapped with write permission."""
        at = addr
        for start, end, prot in self.protections(addr, addr + n):
            if start > at or not prot & 2:   # a hole, or not writable
                return False
            at = end
        return at >= addr + n

    def _special_name(self, addr):
        # Only read-only anonymous VMAs can be [vdso]/[vvar]: ask for the name
        # then (a long name fails with ENAMETOOLONG and is not special).
        rc = lib.vr_vma_query(self._maps, addr, ffi.new("struct vr_vma *"),
                              self._name, ffi.sizeof(self._name))
        return rc == 0 and ffi.string(self._name).startswith(b"[v")

    def _maps_lines(self, tid=None):
        with open(f"/proc/{tid or self.tgid}/maps") as maps:
            for line in maps:
                m = _MAPS_LINE.match(line)
                if m:
                    yield m

    def _vmas_by_text(self, start, end):
        out = []
        for m in self._maps_lines():
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            if hi <= start or lo >= end:
                continue
            out.append(Vma(max(lo, start), min(hi, end),
                           _kind_from_maps(m.group(3), m.group(6), m.group(7))))
        return out

    # --- locks -------------------------------------------------------------
    def locked_bytes(self):
        """VmLck of the address space, in bytes (one read of status)."""
        text = os.pread(self._opened("status"), 8192, 0).decode()
        at = text.find("VmLck:")
        return int(text[at + 6:text.index("kB", at)]) * 1024 if at >= 0 else 0

    def locked_intervals(self):
        """[(start, end)] of mlocked VMAs, from smaps VmFlags (slow: only when VmLck > 0)."""
        out = []
        current = None
        with open(f"/proc/{self.tgid}/task/{self.tgid}/smaps") as smaps:
            for line in smaps:
                m = _MAPS_LINE.match(line)
                if m:
                    current = (int(m.group(1), 16), int(m.group(2), 16))
                elif line.startswith("VmFlags:") and " lo" in line and current:
                    out.append(current)
        return out

    def mark_locked(self, vmas):
        """Re-tag the VMAs that are mlocked as LOCKED (cheap when nothing is locked)."""
        if not self.locked_bytes():
            return vmas
        locked = self.locked_intervals()
        return [v._replace(kind=LOCKED)
                if v.kind == ANON and any(lo < v.end and v.start < hi for lo, hi in locked)
                else v for v in vmas]

    # --- pages -------------------------------------------------------------
    def pagemap(self, start, end):
        """pagemap entries (uint64 each) for the pages of [start, end); all
        zero (nothing present) once the process is gone."""
        n = (end - start) >> PAGE_SHIFT
        entries = array.array("Q")
        try:
            entries.frombytes(os.pread(self._pagemap, n * 8, (start >> PAGE_SHIFT) * 8))
        except OSError:
            pass
        entries.extend([0] * (n - len(entries)))
        return entries

    def discardable(self, start, end):
        """[(start, end)] runs of [start, end) whose pages may be discarded:
        resident and mapped only here (a COW-shared page, the zero page
        included, is not exclusive).  One C pass over the pagemap."""
        max_runs = ((end - start) >> PAGE_SHIFT) // 2 + 1
        out = ffi.new("uint64_t[]", 2 * max_runs)
        n = lib.vr_discardable_runs(self._pagemap, start, end, out, max_runs)
        if n < 0:   # the process is exiting: its memory goes anyway
            return []
        return [(out[2 * i], out[2 * i + 1]) for i in range(n)]

    def resident(self, start, end):
        """[(start, end)] runs of [start, end) that are resident (the zero
        page left out), shared or not: what a purge may discard when no other
        traced space exists.  One PAGEMAP_SCAN walk (Linux 6.7+), ~3x faster
        than `discardable`, which it falls back to."""
        if self._has_scan:
            out = self._scan_out
            n = lib.vr_resident_runs(self._pagemap, start, end, out, len(out) // 2)
            if n >= 0:
                return [(out[2 * i], out[2 * i + 1]) for i in range(n)]
            if n in (-errno.ENOTTY, -errno.EINVAL):
                self._has_scan = False
        return self.discardable(start, end)

    def missing(self, start, end, chunk=1 << 15):
        """[(start, end)] runs of [start, end), which must be mapped, whose
        pages are not present (never touched, or discarded; the zero page
        counts as present).  PAGEMAP_SCAN, or the pagemap before Linux 6.7;
        `chunk` pages at a time, so a huge span needs no huge buffer.
        Raises OSError if the pagemap cannot be read."""
        out = ffi.new("uint64_t[]", 2 * (chunk // 2 + 1))
        runs = []
        for lo in range(start, end, chunk << PAGE_SHIFT):
            hi = min(end, lo + (chunk << PAGE_SHIFT))
            n = check(lib.vr_missing_runs(self._pagemap, lo, hi, out, chunk // 2 + 1),
                      f"pagemap of {self.tgid}")
            for i in range(n):
                if runs and runs[-1][1] == out[2 * i]:   # across a chunk edge
                    runs[-1] = (runs[-1][0], out[2 * i + 1])
                else:
                    runs.append((out[2 * i], out[2 * i + 1]))
        return runs

    def shared_pages(self, start, end):
        """[(address, pfn)] of resident pages in [start, end) that are not
        exclusively mapped (COW-shared after fork, or the zero page).  The
        PFN reads as 0 without CAP_SYS_ADMIN."""
        max_pages = (end - start) >> PAGE_SHIFT
        out = ffi.new("uint64_t[]", 2 * max_pages)
        n = lib.vr_shared_pages(self._pagemap, start, end, out, max_pages)
        if n < 0:   # the process is exiting
            return []
        return [(out[2 * i], out[2 * i + 1] & PM_PFN_MASK) for i in range(n)]

    def syscall_insn(self, tid):
        """Address of a `syscall` instruction (0f 05) the program cannot have
        moved: the one found last time if it is still there, else the first
        in its vDSO, else in an executable mapping of a file (libc); None if
        none.  Checked before each use: a program may unmap or remap its vDSO.
        Read through live task `tid` (the leader may be a zombie)."""
        if self._syscall_insn and self.is_syscall_insn(tid, self._syscall_insn):
            return self._syscall_insn
        self._syscall_insn = None
        lines = [m for m in self._maps_lines(tid) if m.group(3)[:1] == "r" and m.group(3)[2] == "x"]
        vdso = [m for m in lines if m.group(7).strip() == "[vdso]"]
        files = [m for m in lines if int(m.group(6)) and m.group(7).startswith("/")]
        for m in vdso + files:
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            try:
                with open(f"/proc/{tid}/mem", "rb", buffering=0) as mem:
                    mem.seek(lo)
                    at = mem.read(min(hi - lo, 1 << 22)).find(b"\x0f\x05")
            except OSError:
                continue
            if at >= 0:
                self._syscall_insn = lo + at
                return self._syscall_insn
        return None

    def is_syscall_insn(self, tid, addr):
        """True if the two bytes at `addr` are `syscall` (0f 05)."""
        return self.read(addr, 2) == b"\x0f\x05"

    def read(self, addr, n):
        """`n` bytes of the program's memory at `addr` (fewer, or b"", where
        nothing is mapped)."""
        try:
            return os.pread(self._mem, n, addr)
        except OSError:
            return b""

    def write(self, addr, data):
        """Write `data` at `addr`, read-only mappings included (as a debugger
        writes breakpoints).  Raises OSError if not all of it is mapped."""
        if os.pwrite(self._mem, data, addr) != len(data):
            raise OSError(errno.EFAULT, f"short write at {addr:#x} in {self.tgid}")


def tgid_of(tid):
    try:
        with open(f"/proc/{tid}/status") as status:
            for line in status:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


def task_state(tid):
    """One-letter state from /proc/TID/stat ('' if gone)."""
    try:
        with open(f"/proc/{tid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


def comm_of(tid):
    try:
        with open(f"/proc/{tid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


_kpagecount = None


def map_count(pfn):
    """How many page-table mappings the kernel counts for physical page `pfn`
    (/proc/kpagecount, root only); 0 if it cannot be read."""
    global _kpagecount
    try:
        if _kpagecount is None:
            _kpagecount = os.open("/proc/kpagecount", os.O_RDONLY | os.O_CLOEXEC)
        return int.from_bytes(os.pread(_kpagecount, 8, pfn * 8), "little")
    except OSError:
        return 0


def anon_rss_of(tid):
    """Resident anonymous bytes of the process of `tid` (RssAnon in
    /proc/TID/status: what purges change), 0 if gone."""
    try:
        with open(f"/proc/{tid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0
