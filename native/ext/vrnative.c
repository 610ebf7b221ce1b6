/* vrnative.c - the small C part of the vrange-run supervisor.
 *
 * Only what Python cannot do well (or safely between fork and exec):
 * spawning the program under the seccomp filter, the user-notification
 * ioctls, remote memory writes, VMA queries and signalfd.  Policy stays in
 * Python.  Every function returns 0 (or a count) on success and -errno on
 * failure, so the Python side never has to read errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/userfaultfd.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "vrnative.h"
#include "region.h"

/* Debian's headers are older than the kernels we run on. */
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

/* Stages reported back through the error pipe when the child fails. */
enum { STAGE_NNP = 1, STAGE_FILTER = 2, STAGE_SEND = 3, STAGE_EXEC = 4, STAGE_CGROUP = 5 };

static int send_fd(int sock, int fd)
{
    char byte = 0;
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static void child_fail(int errfd, int stage, int err)
{
    int msg[2] = { stage, err };
    (void)!write(errfd, msg, sizeof msg);
    /* 126/127 follow the shell: found but not runnable / not found. */
    _exit(stage == STAGE_EXEC && (err == ENOENT || err == ENOTDIR) ? 127 : 126);
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void child(const char *file, char *const argv[], int action, int nr,
                  const char *cgroup_procs, int sock, int gofd, int errfd)
{
    /* The supervisor blocks signals for its signalfd and Python ignores
     * SIGPIPE/SIGXFSZ; the program must start with the usual defaults. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);

    /* Untrapped syscalls must never stop: the filter returns ALLOW for
     * everything but the vrange number on the native architecture and, with
     * user notification, the calls that lock memory (mlock, mlock2,
     * mlockall, mmap with MAP_LOCKED).  Those are let through at once
     * (FLAG_CONTINUE); seeing them spares every VOLATILE call a lock check.
     * The stub's end-of-batch number stops in the tracer (RET_TRACE; with
     * no tracer it fails with ENOSYS). */
    struct sock_filter notify_prog[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 9),   /* -> 11 */
        /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 8, 0),        /* -> 12 */
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mlock, 7, 0),
        /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mlockall, 6, 0),
        /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mlock2, 5, 0),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VR_STUB_DONE_NR, 5, 0),     /* -> 13 */
        /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 2),            /* -> 11 */
        /* 9 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
        /* 10 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_LOCKED, 1, 0),       /* -> 12 */
        /* 11 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 12 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        /* 13 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
    };
    struct sock_filter trace_prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VR_STUB_DONE_NR, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = { sizeof trace_prog / sizeof trace_prog[0], trace_prog };
    if (action == VR_TRAP_NOTIFY) {
        fprog.len = sizeof notify_prog / sizeof notify_prog[0];
        fprog.filter = notify_prog;
    }

    /* Join the memory cgroup first: every page the program touches is charged. */
    if (cgroup_procs) {
        int fd = open(cgroup_procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            child_fail(errfd, STAGE_CGROUP, errno);
        close(fd);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        child_fail(errfd, STAGE_NNP, errno);
    if (action == VR_TRAP_NOTIFY) {
        /* Once the supervisor has received a call, only a fatal signal may
         * interrupt it: a restarted call would be answered twice. */
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                          SECCOMP_FILTER_FLAG_NEW_LISTENER |
                              SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &fprog);
        if (fd < 0 && errno == EINVAL)
            fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                         SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
        if (fd < 0)
            child_fail(errfd, STAGE_FILTER, errno);
        if (send_fd(sock, (int)fd))
            child_fail(errfd, STAGE_SEND, errno);
        close((int)fd); /* the program must not hold its own listener */
    } else if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog)) {
        child_fail(errfd, STAGE_FILTER, errno);
    }
    close(sock);

    /* Wait until the supervisor has seized us, so exec and every fork is seen. */
    char go;
    if (read(gofd, &go, 1) != 1)
        _exit(125);
    close(gofd);
    execvp(file, argv);
    child_fail(errfd, STAGE_EXEC, errno);
}

int vr_spawn(const char *file, char *const argv[], int action, int nr,
             const char *cgroup_procs, long ptrace_options, struct vr_spawn_result *out)
{
    int sv[2], go[2], err[2];
    memset(out, 0, sizeof *out);
    out->listener = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        return -errno;
    if (pipe2(go, O_CLOEXEC)) {
        int e = errno;
        close(sv[0]); close(sv[1]);
        return -e;
    }
    if (pipe2(err, O_CLOEXEC)) {
        int e = errno;
        close(sv[0]); close(sv[1]); close(go[0]); close(go[1]);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]); close(sv[1]); close(go[0]); close(go[1]);
        close(err[0]); close(err[1]);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]); close(go[1]); close(err[0]);
        child(file, argv, action, nr, cgroup_procs, sv[1], go[0], err[1]);
    }
    close(sv[1]); close(go[0]); close(err[1]);
    out->pid = pid;
    if (action == VR_TRAP_NOTIFY) {
        out->listener = recv_fd(sv[0]);
        if (out->listener >= 0 &&
            ioctl(out->listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                  SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0)
            out->sync_wakeup = 1;
    }
    close(sv[0]);
    /* Seize before the program runs a single instruction of its own. */
    if (out->listener >= 0 || action != VR_TRAP_NOTIFY) {
        if (ptrace(PTRACE_SEIZE, pid, 0, ptrace_options) == 0) {
            out->seized = 1;
            (void)!write(go[1], "g", 1);
        } else {
            out->seize_errno = errno;
        }
    }
    close(go[1]); /* without the go byte the child exits 125 */
    int msg[2];
    ssize_t n;
    do n = read(err[0], msg, sizeof msg); while (n < 0 && errno == EINTR);
    close(err[0]);
    if (n == sizeof msg) {
        out->fail_stage = msg[0];
        out->fail_errno = msg[1];
    }
    return 0;
}

int vr_notif_recv(int fd, struct seccomp_notif *n)
{
    memset(n, 0, sizeof *n);
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, n) ? -errno : 0;
}

int vr_notif_send(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags)
{
    struct seccomp_notif_resp r = { id, val, error, flags };
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r) ? -errno : 0;
}

int vr_notif_id_valid(int fd, uint64_t id)
{
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) ? -errno : 0;
}

/* Write back the bytes of [addr, addr + n) that it holds: fails, writing
 * nothing, where they cannot be written. */
static int probe_writable(int pid, uint64_t addr, size_t n)
{
    char old[sizeof(int32_t)];
    struct iovec local = { old, n };
    struct iovec remote = { (void *)(uintptr_t)addr, n };
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got == (ssize_t)n)
        got = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (got < 0 && errno == ESRCH)
        return -ESRCH;
    return got == (ssize_t)n ? 0 : -EFAULT;
}

int vr_write_i32(int pid, uint64_t addr, int32_t value)
{
    /* The kernel's put_user writes all 4 bytes or none.  process_vm_writev
     * would write the part in the first page and then fail on the second:
     * where the int straddles two pages, the second must take a write
     * first.  (Writing back its bytes could undo a store another thread
     * makes in that instant, to an int it passes as `purged`: not a real
     * program's case.) */
    uint64_t next_page = (addr | 4095) + 1;
    if (next_page - addr < sizeof value) {
        int rc = probe_writable(pid, next_page, sizeof value - (next_page - addr));
        if (rc)
            return rc;
    }
    struct iovec local = { &value, sizeof value };
    struct iovec remote = { (void *)(uintptr_t)addr, sizeof value };
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (n < 0)
        return -errno;
    return n == sizeof value ? 0 : -EFAULT;
}

int vr_vma_query(int maps_fd, uint64_t addr, struct vr_vma *q, char *name,
                 uint32_t name_size)
{
    return vr_vma_at(maps_fd, addr, q, name, name_size);
}

int vr_signalfd(const int *signals, int count)
{
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++)
        sigaddset(&set, signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL))
        return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int vr_signalfd_read(int fd, struct vr_siginfo *out)
{
    struct signalfd_siginfo si;
    ssize_t n = read(fd, &si, sizeof si);
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    if (n != sizeof si)
        return -EIO;
    out->signo = (int)si.ssi_signo;
    out->code = si.ssi_code;
    out->pid = (int)si.ssi_pid;
    return 1;
}

int vr_kcmp_vm(int pid1, int pid2)
{
    long r = syscall(SYS_kcmp, pid1, pid2, KCMP_VM, 0, 0);
    return r < 0 ? -errno : (int)r;
}

int vr_tgkill(int tgid, int tid, int sig)
{
    return syscall(SYS_tgkill, tgid, tid, sig) ? -errno : 0;
}

/* A copy of fd `fd` of process `pid` (pidfd_getfd, Linux 5.6+). */
int vr_pidfd_getfd(int pid, int fd)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -errno;
    int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    int err = errno;
    close(pidfd);
    return copy < 0 ? -err : copy;
}

/* userfaultfd set up so that a fault on a registered missing page raises
 * SIGBUS in the faulting task (and EFAULT in a syscall) instead of waiting
 * for a handler: the vrange patches' purged-page semantics. */
int vr_uffd_enable_sigbus(int ufd)
{
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
    return ioctl(ufd, UFFDIO_API, &api) ? -errno : 0;
}

int vr_uffd_register(int ufd, uint64_t start, uint64_t len)
{
    struct uffdio_register reg = { .range = { start, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    return ioctl(ufd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

int vr_uffd_unregister(int ufd, uint64_t start, uint64_t len)
{
    struct uffdio_range range = { start, len };
    return ioctl(ufd, UFFDIO_UNREGISTER, &range) ? -errno : 0;
}

/* Map the zero page at every missing page of the `n` (start, end) runs of
 * `runs`, which lie in registered spans: a read then gives zeros and a write
 * an ordinary copy-on-write fault, not SIGBUS.  Pages already present (the
 * program touched them meanwhile: EEXIST) are left alone.  Returns the
 * number of pages filled, or -errno at the first other failure. */
int vr_uffd_zeropage(int ufd, const uint64_t *runs, int n)
{
    int filled = 0;
    for (int i = 0; i < n; i++) {
        uint64_t at = runs[2 * i], end = runs[2 * i + 1];
        while (at < end) {
            struct uffdio_zeropage zp = {
                .range = { at, end - at }, .mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
            };
            if (!ioctl(ufd, UFFDIO_ZEROPAGE, &zp)) {
                filled += (int)((end - at) >> 12);
                break;
            }
            if (zp.zeropage > 0) {            /* EAGAIN: stopped at a present page */
                filled += (int)((uint64_t)zp.zeropage >> 12);
                at += (uint64_t)zp.zeropage;
            } else if (zp.zeropage == -EEXIST) {
                at += 4096;                   /* that page is present: skip it */
            } else {
                return zp.zeropage < 0 ? (int)zp.zeropage : -errno;
            }
        }
    }
    return filled;
}

/* Call visit(ctx, address, entry) for each page of [start, end), reading
 * the pagemap in 64 Ki-entry chunks.  Stops early (returning its value) if
 * visit returns non-zero; returns 0 when done, -errno on a read error. */
static int scan_pagemap(int fd, uint64_t start, uint64_t end,
                        int (*visit)(void *ctx, uint64_t addr, uint64_t entry), void *ctx)
{
    static uint64_t buf[65536];
    for (uint64_t page = start >> 12; page < end >> 12;) {
        uint64_t n = (end >> 12) - page;
        if (n > 65536)
            n = 65536;
        ssize_t got = pread(fd, buf, n * 8, (off_t)(page * 8));
        if (got < 0)
            return -errno;
        if ((uint64_t)got != n * 8)
            return -EIO;
        for (uint64_t i = 0; i < n; i++) {
            int rc = visit(ctx, (page + i) << 12, buf[i]);
            if (rc)
                return rc;
        }
        page += n;
    }
    return 0;
}

struct runs { uint64_t *out; int max, n, open; uint64_t open_at; };

static int add_run(struct runs *r, uint64_t from, uint64_t to)
{
    if (r->n == r->max)
        return -ENOBUFS;
    r->out[2 * r->n] = from;
    r->out[2 * r->n + 1] = to;
    r->n++;
    return 0;
}

/* Page `addr` is in (`in`) or out of the runs being built: open or close one. */
static int track_run(struct runs *r, uint64_t addr, int in)
{
    if (in && !r->open) {
        r->open = 1;
        r->open_at = addr;
    } else if (!in && r->open) {
        r->open = 0;
        return add_run(r, r->open_at, addr);
    }
    return 0;
}

static int visit_discardable(void *ctx, uint64_t addr, uint64_t entry)
{
    const uint64_t want = (1ull << 63) | (1ull << 56);   /* present, exclusive */
    return track_run(ctx, addr, (entry & want) == want);
}

/* Runs of pages in [start, end) that are present and exclusively mapped
 * (pagemap bits 63 and 56): what a purge may discard.  Writes up to
 * `max_runs` (start, end) pairs to `out`; returns the number of runs, or
 * -errno. */
int vr_discardable_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out,
                        int max_runs)
{
    struct runs r = { out, max_runs, 0, 0, 0 };
    int rc = scan_pagemap(pagemap_fd, start, end, visit_discardable, &r);
    if (!rc && r.open)
        rc = add_run(&r, r.open_at, end);
    return rc ? rc : r.n;
}

static int visit_shared(void *ctx, uint64_t addr, uint64_t entry)
{
    if ((entry >> 63) && !((entry >> 56) & 1))   /* present, not exclusive */
        return add_run(ctx, addr, entry);
    return 0;
}

/* Present pages of [start, end) that are NOT exclusively mapped (shared
 * copy-on-write, or the zero page): writes (address, pagemap entry) pairs,
 * up to `max`; returns the count or -errno. */
int vr_shared_pages(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out, int max)
{
    struct runs r = { out, max, 0, 0, 0 };
    int rc = scan_pagemap(pagemap_fd, start, end, visit_shared, &r);
    return rc ? rc : r.n;
}


/* PAGEMAP_SCAN (Linux 6.7+), declared here: Debian's headers are older. */
struct vr_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct vr_page_region { uint64_t start, end, categories; };
#define VR_PAGEMAP_SCAN _IOWR('f', 16, struct vr_pm_scan_arg)
#define VR_PAGE_IS_PRESENT (1 << 3)
#define VR_PAGE_IS_PFNZERO (1 << 5)

static int visit_missing(void *ctx, uint64_t addr, uint64_t entry)
{
    return track_run(ctx, addr, !(entry >> 63));
}

/* Runs of [start, end) whose pages fall in the categories `mask` (each bit
 * in `inverted` negated), by the kernel's page-table walk (PAGEMAP_SCAN,
 * Linux 6.7+).  Writes up to `max_runs` (start, end) pairs to `out`;
 * returns the number of runs, or -errno (-ENOTTY/-EINVAL: no PAGEMAP_SCAN). */
static int scan_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t mask,
                     uint64_t inverted, uint64_t *out, int max_runs)
{
    struct vr_page_region vec[256];
    int n = 0;
    uint64_t at = start;
    while (at < end) {
        struct vr_pm_scan_arg arg = {
            .size = sizeof arg, .start = at, .end = end,
            .vec = (uint64_t)(uintptr_t)vec, .vec_len = 256,
            .category_mask = mask, .category_inverted = inverted,
            .return_mask = VR_PAGE_IS_PRESENT,
        };
        int got = ioctl(pagemap_fd, VR_PAGEMAP_SCAN, &arg);
        if (got < 0)
            return -errno;
        for (int i = 0; i < got; i++) {
            if (n && out[2 * n - 1] == vec[i].start) {   /* split at a chunk edge */
                out[2 * n - 1] = vec[i].end;
                continue;
            }
            if (n == max_runs)
                return -ENOBUFS;
            out[2 * n] = vec[i].start;
            out[2 * n + 1] = vec[i].end;
            n++;
        }
        if (arg.walk_end <= at)
            return -EIO;
        at = arg.walk_end;
    }
    return n;
}

/* Runs of mapped pages in [start, end) that are not present (never touched,
 * or discarded), by PAGEMAP_SCAN or else by reading the pagemap.
 * Unmapped addresses are left out by PAGEMAP_SCAN only: pass a range that
 * is mapped.  Writes up to `max_runs` (start, end) pairs to `out`; returns
 * the number of runs, or -errno. */
int vr_missing_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out, int max_runs)
{
    int n = scan_runs(pagemap_fd, start, end, VR_PAGE_IS_PRESENT, VR_PAGE_IS_PRESENT,
                      out, max_runs);
    if (n == -ENOTTY || n == -EINVAL) {   /* before Linux 6.7: read the pagemap */
        struct runs r = { out, max_runs, 0, 0, 0 };
        int rc = scan_pagemap(pagemap_fd, start, end, visit_missing, &r);
        if (!rc && r.open)
            rc = add_run(&r, r.open_at, end);
        return rc ? rc : r.n;
    }
    return n;
}

/* Runs of resident pages in [start, end), the zero page left out, found by
 * the kernel's page-table walk: ~10x faster than reading the pagemap, but
 * blind to sharing, so only for a space no other traced space can share
 * with.  Same output as vr_discardable_runs; -ENOTTY before Linux 6.7. */
int vr_resident_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out,
                     int max_runs)
{
    return scan_runs(pagemap_fd, start, end, VR_PAGE_IS_PRESENT | VR_PAGE_IS_PFNZERO,
                     VR_PAGE_IS_PFNZERO, out, max_runs);
}
