"""x86_64 syscall numbers of the calls the supervisor runs inside tracees
(Python's os and mmap modules give the flags: os.O_CLOEXEC, mmap.MADV_DONTNEED)."""
SYS_CLOSE = 3
SYS_MPROTECT = 10
SYS_MADVISE = 28
SYS_USERFAULTFD = 323
SYS_MMAP = 9
