/* floor_notify.c - the cheapest possible user-notification supervisor.
 *
 *   floor_notify NR PROGRAM [ARGS...]
 *
 * Runs PROGRAM with a seccomp filter whose only trap is syscall NR (x86_64)
 * sent to us by SECCOMP_RET_USER_NOTIF, and answers every such call at once
 * with 0 (val=0, error=0): an empty handler that writes nothing into the
 * program.  benchmarks/run.py runs its probe under this and under vrange-run
 * side by side, so vrange-run's per-call cost can be read against the floor
 * the kernel mechanism allows.  Like vrange-run, the listener is switched to
 * synchronous wake-ups (Linux 6.6+), which keep both sides on one CPU.
 *
 * Exit status: PROGRAM's own, 128+N if signal N killed it, 127 if it could
 * not be executed, 125 if the setup failed.  Only PROGRAM itself is served:
 * we stop when it exits (children it leaves behind get ENOSYS).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static int listener = -1, devnull = -1;

static void die(const char *what)
{
    perror(what);
    exit(125);
}

/* NOTIF_RECV sleeps until a call arrives, even after the last task using
 * the filter is gone.  So when the program exits, put /dev/null in place of
 * the listener: a RECV running now is interrupted (EINTR, no SA_RESTART)
 * and the next one fails (ENOTTY).  No race, whenever the signal comes. */
static void on_sigchld(int sig)
{
    (void)sig;
    dup2(devnull, listener);
}

static void send_fd(int sock, int fd)
{
    char data = 'L';
    struct iovec iov = { &data, 1 };
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sock, &msg, 0) != 1)
        die("sendmsg");
}

static int recv_fd(int sock)
{
    char data;
    struct iovec iov = { &data, 1 };
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    if (recvmsg(sock, &msg, 0) != 1)
        return -1;   /* the child failed before seccomp() and said why */
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* In the child: filter NR to the listener, hand the listener over, exec. */
static void child(int nr, char **argv, int sock)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof code / sizeof code[0], code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        die("prctl(PR_SET_NO_NEW_PRIVS)");
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0)
        die("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
    send_fd(sock, fd);
    close(fd);
    close(sock);
    execvp(argv[0], argv);
    fprintf(stderr, "floor_notify: %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: floor_notify NR PROGRAM [ARGS...]\n");
        return 125;
    }
    int nr = atoi(argv[1]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        die("socketpair");
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        die("/dev/null");
    /* Handler first: a program that exits at once must still end the loop. */
    struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_NOCLDSTOP };
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sa.sa_mask, NULL);   /* until the listener is ours */
    sigaction(SIGCHLD, &sa, NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);
        close(sv[0]);
        child(nr, argv + 2, sv[1]);
    }
    close(sv[1]);
    listener = recv_fd(sv[0]);
    close(sv[0]);
    if (listener >= 0 &&
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP))
        perror("floor_notify: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (going on without it)");
    sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);

    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    while (listener >= 0) {
        memset(&req, 0, sizeof req);   /* RECV insists on a zeroed struct */
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
            if (errno == EINTR)
                continue;              /* if SIGCHLD, the next RECV fails */
            break;                     /* the program is gone (see on_sigchld) */
        }
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;              /* val = 0, error = 0 */
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);   /* ENOENT: caller killed */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
