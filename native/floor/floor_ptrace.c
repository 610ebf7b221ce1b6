/* floor_ptrace.c - the cheapest possible RET_TRACE + ptrace supervisor.
 *
 *   floor_ptrace NR PROGRAM [ARGS...]
 *
 * Runs PROGRAM with a seccomp filter whose only trap is syscall NR (x86_64)
 * sent to us as a ptrace seccomp stop (SECCOMP_RET_TRACE), and answers every
 * such call at once with 0: orig_rax = -1 skips the call, rax = 0 is its
 * result.  The floor of `vrange-run --trap ptrace`; benchmarks/run.py runs
 * its probe under both side by side.
 *
 * Exit status: PROGRAM's own, 128+N if signal N killed it, 127 if it could
 * not be executed, 125 if the setup failed.  Only PROGRAM itself is traced
 * (its children's NR calls fail with ENOSYS).
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
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

static void die(const char *what)
{
    perror(what);
    exit(125);
}

/* In the child: filter NR to our tracer, wait until it has seized us, exec. */
static void child(int nr, char **argv, int go)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof code / sizeof code[0], code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        die("prctl(PR_SET_NO_NEW_PRIVS)");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
        die("seccomp(SECCOMP_SET_MODE_FILTER)");
    char byte;
    if (read(go, &byte, 1) != 1)
        _exit(125);   /* the parent could not seize us and said so */
    close(go);
    execvp(argv[0], argv);
    fprintf(stderr, "floor_ptrace: %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: floor_ptrace NR PROGRAM [ARGS...]\n");
        return 125;
    }
    int nr = atoi(argv[1]);
    int go[2];
    if (pipe2(go, O_CLOEXEC))
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(go[1]);
        child(nr, argv + 2, go[0]);
    }
    close(go[0]);
    long options = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SEIZE, pid, 0, options))
        perror("floor_ptrace: PTRACE_SEIZE");
    else if (write(go[1], "g", 1) != 1)
        die("write");
    close(go[1]);

    for (;;) {
        int status;
        if (waitpid(pid, &status, __WALL) < 0) {
            if (errno == EINTR)
                continue;
            die("waitpid");
        }
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
            return 128 + WTERMSIG(status);
        int event = status >> 16, sig = WSTOPSIG(status);
        if (event == PTRACE_EVENT_SECCOMP) {
            struct user_regs_struct regs;
            ptrace(PTRACE_GETREGS, pid, 0, &regs);
            regs.orig_rax = -1;   /* skip the call ... */
            regs.rax = 0;         /* ... and make 0 its result */
            ptrace(PTRACE_SETREGS, pid, 0, &regs);
            ptrace(PTRACE_CONT, pid, 0, 0);
        } else if (event == PTRACE_EVENT_STOP && sig != SIGTRAP) {
            ptrace(PTRACE_LISTEN, pid, 0, 0);   /* group stop: stay stopped */
        } else if (event) {
            ptrace(PTRACE_CONT, pid, 0, 0);     /* exec stop, PTRACE_INTERRUPT */
        } else {
            ptrace(PTRACE_CONT, pid, 0, sig);   /* a signal for the program */
        }
    }
}
