"""The remote-syscall stub: one page of x86_64 code mapped into a traced program.

The supervisor runs its syscalls (madvise, mprotect, ...) at the `syscall`
at the start of this page, stopping at syscall entry and exit with
PTRACE_SYSCALL instead of single-stepping: no trap flag is ever set.  If the
supervisor dies at any instant (even by SIGKILL), the thread is no longer
stopped and simply runs on through the page: it finishes the syscall it was
given, restores its signal mask and every register from the save area
written before the session, and jumps back to where it was interrupted (a
syscall it was in is restarted, as the kernel would).  So the program is
never left with foreign registers, a pending SIGTRAP, or a blocked mask.

The page also starts the purger thread (CLONE_ENTRY): a thread of the
program that only ever sleeps in pause() with every signal blocked, so
purges need not stop a program thread, even one paused at a memory limit.
After clone, the new thread parks; the calling thread, if its tracer is
gone, restores itself as above.

The page also runs a batch of madvise calls in one go (BATCH_ENTRY): the
(start, length) pairs written at RUNS, one call each, until one fails; then
a call of DONE_NR, which the filter gives to the tracer (SECCOMP_RET_TRACE):
two stops for the whole batch instead of two per call.  With no tracer the
kernel fails that call with ENOSYS and the thread restores itself as above.

Layout: code at 0, CLONE_ENTRY, the thread's name at NAME, the save area
at SAVE (r15 ... rdi and rflags in pop order, then rsp, rip and the signal
mask), BATCH_ENTRY, and from RUNS (the next page) the batch's pairs; the
mapping is SIZE bytes.  Position independent.
"""
import struct

PAGE = 4096
CLONE_ENTRY = 0x60
NAME = 0xe0
NAME_TEXT = b"vrange-purger\0"
SAVE = 0x100
_POP_ORDER = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
              "rax", "rcx", "rdx", "rsi", "rdi")
RSP_SLOT = SAVE + 8 * (len(_POP_ORDER) + 1)
RIP_SLOT = RSP_SLOT + 8
MASK_SLOT = RIP_SLOT + 8
BATCH_ENTRY = 0x1a0
RUNS = PAGE
SIZE = 16 * PAGE
BATCH_MAX = (SIZE - RUNS) // 16   # (start, length) pairs a batch holds
# No kernel assigns it (nor x32's bit 30): the filter traces it (RET_TRACE).
DONE_NR = 0xaffe
SYS_MADVISE = 28
SYS_RT_SIGPROCMASK = 14
SYS_PAUSE = 34
SYS_CLONE = 56
SYS_EXIT = 60
SYS_PRCTL = 157
PR_SET_NAME = 15
# A thread sharing everything (as pthread_create makes), its own stack unused.
CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000
SIG_SETMASK = 2
RESTART_SYSCALL = 219
# -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND restart the call itself;
# -ERESTART_RESTARTBLOCK restarts through restart_syscall.
_RESTARTS = {512: None, 513: None, 514: None, 516: RESTART_SYSCALL}
_U64 = (1 << 64) - 1


def _rel32(at, target, length):
    """rip-relative displacement of an instruction of `length` bytes at `at`."""
    return struct.pack("<i", target - (at + length))


def code():
    """The page's code (bytes), entry (the injected syscall) at 0."""
    out = bytearray(b"\x0f\x05")                                     # syscall (injected)
    out += b"\xb8" + struct.pack("<I", SYS_RT_SIGPROCMASK)           # mov eax, 14
    out += b"\xbf" + struct.pack("<I", SIG_SETMASK)                  # mov edi, SIG_SETMASK
    out += b"\x48\x8d\x35" + _rel32(len(out), MASK_SLOT, 7)          # lea rsi, [rip+mask]
    out += b"\x31\xd2"                                               # xor edx, edx
    out += b"\x41\xba" + struct.pack("<I", 8)                        # mov r10d, 8
    out += b"\x0f\x05"                                               # syscall
    out += b"\x48\x8d\x25" + _rel32(len(out), SAVE, 7)               # lea rsp, [rip+save]
    pops = {"r15": b"\x41\x5f", "r14": b"\x41\x5e", "r13": b"\x41\x5d", "r12": b"\x41\x5c",
            "rbp": b"\x5d", "rbx": b"\x5b", "r11": b"\x41\x5b", "r10": b"\x41\x5a",
            "r9": b"\x41\x59", "r8": b"\x41\x58", "rax": b"\x58", "rcx": b"\x59",
            "rdx": b"\x5a", "rsi": b"\x5e", "rdi": b"\x5f"}
    for name in _POP_ORDER:
        out += pops[name]
    out += b"\x9d"                                                   # popfq
    out += b"\x48\x8b\x25" + _rel32(len(out), RSP_SLOT, 7)           # mov rsp, [rip+rsp]
    out += b"\xff\x25" + _rel32(len(out), RIP_SLOT, 6)               # jmp [rip+rip]
    assert len(out) <= CLONE_ENTRY
    out += b"\x90" * (CLONE_ENTRY - len(out))
    out += b"\x0f\x05"                                               # syscall (clone)
    out += b"\x48\x85\xc0"                                           # test rax, rax
    out += b"\x0f\x85" + _rel32(len(out), 2, 6)                      # jnz restore path
    park = len(out)
    out += b"\xb8" + struct.pack("<I", SYS_PAUSE)                    # park: mov eax, 34
    out += b"\x0f\x05"                                               # syscall (pause)
    out += b"\xeb" + struct.pack("<b", park - (len(out) + 2))        # jmp park
    assert len(out) <= NAME
    out += b"\x90" * (NAME - len(out)) + NAME_TEXT
    assert len(out) <= SAVE
    out += b"\0" * (BATCH_ENTRY - len(out))   # the save area
    # rbx: the pairs, r12: how many, r13: the advice, r14: index (0 at entry).
    # Out: r14 = pairs done, r15 = the failing call's result (0: none failed).
    loop = len(out)
    out += b"\x4d\x39\xe6"                                       # cmp r14, r12
    out += b"\x73\x24"                                           # jae done
    out += b"\x4c\x89\xf0\x48\xc1\xe0\x04"                       # rax = r14 * 16
    out += b"\x48\x8b\x3c\x03\x48\x8b\x74\x03\x08"               # rdi, rsi = pair
    out += b"\x4c\x89\xea"                                       # mov rdx, r13
    out += b"\xb8" + struct.pack("<I", SYS_MADVISE)               # mov eax, 28
    out += b"\x0f\x05"                                           # syscall
    out += b"\x48\x85\xc0\x75\x05"                               # test rax, rax; jnz done
    out += b"\x49\xff\xc6"                                       # inc r14
    out += b"\xeb" + struct.pack("<b", loop - (len(out) + 2))     # jmp loop
    assert out[loop + 4] == len(out) - (loop + 5)                 # jae lands here
    out += b"\x49\x89\xc7"                                       # done: mov r15, rax
    out += b"\xb8" + struct.pack("<I", DONE_NR)                   # mov eax, DONE_NR
    out += b"\x0f\x05"                                           # syscall (to the tracer)
    out += b"\xe9" + _rel32(len(out), 2, 5)                       # jmp restore path
    assert len(out) <= RUNS
    return bytes(out)


CODE = code()


def intact(data):
    """True if `data` (the first len(CODE) bytes of a mapped stub) is still
    our code; the save area between may hold anything."""
    return data[:SAVE] == CODE[:SAVE] and data[BATCH_ENTRY:] == CODE[BATCH_ENTRY:]


def pairs(runs):
    """The bytes at RUNS for a batch over `runs` [(start, end)]."""
    return struct.pack(f"<{2 * len(runs)}Q", *(v for s, e in runs for v in (s, e - s)))


def restarted(regs):
    """(rax, rip) that resume a thread stopped with `regs` the way the
    kernel would on its way out of a signal stop: a syscall it was
    interrupted in is made again (the kernel does this only on the signal
    path, not after a syscall stop, so a session that ends at one must)."""
    rax, rip = regs.rax, regs.rip
    if regs.orig_rax != _U64:
        err = -struct.unpack("<q", struct.pack("<Q", rax))[0]
        if err in _RESTARTS:
            rax = regs.orig_rax if _RESTARTS[err] is None else _RESTARTS[err]
            rip = regs.rip - 2
    return rax, rip


def save_area(regs, mask):
    """The bytes at SAVE that bring a thread back to `regs` (its registers
    when the session began) with signal mask `mask`."""
    rax, rip = restarted(regs)
    values = [rax if name == "rax" else getattr(regs, name) for name in _POP_ORDER]
    values += [regs.eflags, regs.rsp, rip, mask]
    return struct.pack(f"<{len(values)}Q", *(v & _U64 for v in values))
