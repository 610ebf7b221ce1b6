"""ABI profiles of the vrange() proposals: numbers, argument layout, constants.

A profile turns the six raw syscall arguments into a `Call` (what is asked)
and a `Reply` (what was done) into the raw return value.  See docs/vrange.2.md.

>>> PROFILES["v12"].decode([0x10000, 8192, 1, 0, 0, 0]).mode
'volatile'
>>> PROFILES["v10"].decode([0x10000, 8192, 1, 0, 0, 0]).mode
'nonvolatile'
"""
import errno
from typing import NamedTuple, Optional

PAGE_SIZE = 4096
VOLATILE = "volatile"
NONVOLATILE = "nonvolatile"

# A number no kernel assigns (x86_64 ends near 470): chosen for new programs.
NATIVE_NR = 1000
# Native flags: PARTIAL lets a purge take single pages instead of the whole range.
NATIVE_FLAG_PARTIAL = 1


def _user_space_end():
    """End of the user address space: 47-bit, or 56-bit with 5-level paging."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return (1 << 56) - PAGE_SIZE if " la57" in line else (1 << 47) - PAGE_SIZE
    except OSError:
        pass
    return (1 << 47) - PAGE_SIZE


USER_SPACE_END = _user_space_end()


class Call(NamedTuple):
    """One decoded vrange call; `error` is an errno when the arguments are bad."""
    start: int
    length: int          # rounded down to whole pages
    mode: Optional[str]  # VOLATILE, NONVOLATILE, or None if unknown
    partial: bool
    purged_ptr: int      # 0 if the ABI has none or the caller passed NULL
    error: int           # 0, or the errno the kernel would return before any change


class Reply(NamedTuple):
    processed: int   # bytes changed, from start
    purged: bool


class Profile(NamedTuple):
    name: str
    nr: int
    volatile: int       # value of the mode argument meaning VOLATILE
    nonvolatile: int
    returns: str        # "bytes" (like write()) or "purged" (v7: 0 or 1)
    purged_arg: int     # index of `int *purged`, -1 if none
    flags_arg: int      # index of a flags word, -1 if none
    allowed_flags: int  # flags the profile accepts
    behavior_arg: int   # v7's FULL/PARTIAL argument, -1 if none
    signature: str

    def with_nr(self, nr):
        return self._replace(nr=nr)

    def decode(self, args):
        """Decode raw arguments; apply the rules checked before any change."""
        start, length, raw_mode = args[0], args[1], args[2] & 0xFFFFFFFF
        length -= length % PAGE_SIZE
        partial = False
        bad = 0
        if self.flags_arg >= 0:
            flags = args[self.flags_arg] & 0xFFFFFFFF
            if flags & ~self.allowed_flags:
                bad = errno.EINVAL
            partial = bool(flags & NATIVE_FLAG_PARTIAL)
        if self.behavior_arg >= 0:
            behavior = args[self.behavior_arg] & 0xFFFFFFFF
            if behavior not in (0, 1):
                bad = errno.EINVAL
            partial = behavior == 1
        mode = {self.volatile: VOLATILE, self.nonvolatile: NONVOLATILE}.get(raw_mode)
        purged_ptr = args[self.purged_arg] if self.purged_arg >= 0 else 0
        if (start % PAGE_SIZE or length == 0 or mode is None
                or start + length > USER_SPACE_END):
            bad = errno.EINVAL
        return Call(start, length, mode, partial, purged_ptr, bad)

    def encode(self, call, reply):
        """The raw return value for a successful call."""
        if self.returns == "purged":
            return int(call.mode == NONVOLATILE and reply.purged)
        return reply.processed


PROFILES = {
    "native": Profile("native", NATIVE_NR, 1, 0, "bytes", 4, 3, NATIVE_FLAG_PARTIAL, -1,
                      "ssize_t vrange(unsigned long start, size_t len, int mode, "
                      "unsigned int flags, int *purged)"),
    "v7": Profile("v7", 314, 0, 1, "purged", -1, -1, 0, 3,
                  "int vrange(unsigned long start, size_t len, int mode, int behavior)"),
    "v10": Profile("v10", 314, 0, 1, "bytes", 3, -1, 0, -1,
                   "ssize_t vrange(unsigned long start, size_t len, int mode, int *purged)"),
    "v12": Profile("v12", 316, 1, 0, "bytes", 4, 3, 0, -1,
                   "ssize_t vrange(unsigned long start, size_t len, int mode, "
                   "unsigned int flags, int *purged)"),
}

# What each profile's number belongs to on a current kernel (said in --help).
CLAIMED = {314: "sched_setattr", 316: "renameat2"}
