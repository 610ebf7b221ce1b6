/* classic_chunks_under_pressure.c - the vrange patches' classic test, redone.
 *
 * 26 chunks of 16 KiB, chunk i filled with 'A'+i; every other chunk (the
 * even ones) marked volatile.  A child creates memory pressure inside the
 * memory cgroup (run under `vrange-run --memory-limit`): it execs this
 * program as a hog that allocates HOG_MB MiB and holds it until the parent
 * has seen its volatile chunks discarded (mincore), then exits.
 *
 *   repin            re-pin every chunk, print its purged answer, check data:
 *                    "chunk I purged=P data=ok|zero|bad"
 *   sigbus-handler   read every chunk WITHOUT re-pinning; a SIGBUS handler
 *                    re-pins the faulting chunk and rebuilds its data:
 *                    "chunk I data=ok handled=H"
 * Ends with "purge seen=1" (or 0 if the chunks were never discarded).
 * Usage: classic_chunks_under_pressure repin|sigbus-handler HOG_MB
 *        classic_chunks_under_pressure --hog MB READY_FD GO_FD   (internal)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vrange.h"

#define CHUNK (16 * 1024)
#define NCHUNKS 26
static char *buf;
static volatile int handled[NCHUNKS];

static void fill(int i) { memset(buf + (size_t)i * CHUNK, 'A' + i, CHUNK); }

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)ctx;
    int i = (int)(((char *)si->si_addr - buf) / CHUNK);
    if (i < 0 || i >= NCHUNKS)
        _exit(99);   /* a SIGBUS we did not expect */
    int purged;
    vrange((unsigned long)(buf + (size_t)i * CHUNK), CHUNK, VRANGE_NONVOLATILE, 0, &purged);
    fill(i);          /* fix the data up, then the access is retried */
    handled[i]++;
}

static int hog(size_t mb, int ready, int go)
{
    char *m = malloc(mb << 20);
    memset(m, 1, mb << 20);
    char c = 'r';
    (void)!write(ready, &c, 1);
    (void)!read(go, &c, 1);   /* until the parent saw its purge (or gave up) */
    return m[mb] == 1 ? 0 : 1;
}

static int even_chunks_resident(void)
{
    unsigned char vec[NCHUNKS * CHUNK / 4096];
    if (mincore(buf, NCHUNKS * CHUNK, vec))
        return -1;
    int n = 0;
    for (int i = 0; i < NCHUNKS; i += 2)
        n += vec[(size_t)i * CHUNK / 4096] & 1;
    return n;
}

static const char *data_state(int i)
{
    int ok = 1, zero = 1;
    for (size_t k = 0; k < CHUNK; k++) {
        ok &= buf[(size_t)i * CHUNK + k] == 'A' + i;
        zero &= buf[(size_t)i * CHUNK + k] == 0;
    }
    return ok ? "ok" : zero ? "zero" : "bad";
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--hog"))
        return hog((size_t)atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (argc != 3)
        return 2;
    int handler = !strcmp(argv[1], "sigbus-handler");
    setvbuf(stdout, NULL, _IONBF, 0);
    buf = mmap(NULL, NCHUNKS * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < NCHUNKS; i++)
        fill(i);
    for (int i = 0; i < NCHUNKS; i += 2)
        if (vrange((unsigned long)(buf + (size_t)i * CHUNK), CHUNK, VRANGE_VOLATILE, 0, NULL) < 0)
            return 3;
    if (handler) {
        struct sigaction sa = { 0 };
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGBUS, &sa, NULL);
    }

    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        return 4;
    pid_t pid = fork();
    if (pid == 0) {
        char mb[16], rfd[16], gfd[16];
        snprintf(mb, sizeof mb, "%s", argv[2]);
        snprintf(rfd, sizeof rfd, "%d", ready[1]);
        snprintf(gfd, sizeof gfd, "%d", go[0]);
        execl("/proc/self/exe", argv[0], "--hog", mb, rfd, gfd, (char *)NULL);
        _exit(127);
    }
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 5;
    int seen = 0;   /* wait (at most 10 s) until the volatile chunks are gone */
    for (int t = 0; t < 1000 && !seen; t++) {
        seen = even_chunks_resident() == 0;
        if (!seen)
            usleep(10000);
    }
    (void)!write(go[1], "g", 1);
    int status;
    waitpid(pid, &status, 0);

    for (int i = 0; i < NCHUNKS; i++) {
        if (handler) {
            const char *state = data_state(i);   /* touches the chunk: may SIGBUS */
            printf("chunk %d data=%s handled=%d\n", i, state, handled[i]);
        } else {
            int purged = -1;
            vrange((unsigned long)(buf + (size_t)i * CHUNK), CHUNK, VRANGE_NONVOLATILE, 0, &purged);
            printf("chunk %d purged=%d data=%s\n", i, purged, data_state(i));
        }
    }
    printf("purge seen=%d hog exit=%d\n", seen, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
