/* 4_sigbus.c - touching purged memory that is still volatile raises SIGBUS.
 *
 * As in the v10 patch's second test: 26 chunks of 16 KiB, chunk i filled
 * with the letter 'A'+i, every other chunk (the even ones) marked VOLATILE.
 * After a purge the program reads every chunk WITHOUT re-pinning it first.
 * A purged page that is still volatile has no data to show: reading it
 * raises SIGBUS (si_addr = the page).
 *
 *   4_sigbus no-handler   SIGBUS's default action kills the program
 *   4_sigbus handler      a SIGBUS handler re-pins the chunk (NONVOLATILE,
 *                         which answers purged=1), rebuilds its data and
 *                         returns: the read is retried and succeeds
 *
 * Prints one line per chunk: "chunk I 'L' volatile|pinned data=ok|zero|bad
 * sigbus=N"; exit 0 iff no chunk is bad.
 * Build: cc -O2 -I native/include -o demos/build/4_sigbus demos/4_sigbus.c
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vrange.h"

#define CHUNK (16 * 1024)
#define NCHUNKS 26

static char *buf;
static volatile int sigbus_in[NCHUNKS];    /* SIGBUS seen, per chunk */
static volatile int repin_said[NCHUNKS];   /* the handler's purged answer */

static void fill(int i) { memset(buf + (size_t)i * CHUNK, 'A' + i, CHUNK); }

/* The access to a purged volatile page faulted: repair it and return. */
static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)ctx;
    long i = ((char *)si->si_addr - buf) / CHUNK;
    if ((char *)si->si_addr < buf || i >= NCHUNKS)
        _exit(99);   /* not ours: a real bug */
    int purged = -1;
    vrange((unsigned long)(buf + i * CHUNK), CHUNK, VRANGE_NONVOLATILE, 0, &purged);
    fill(i);                 /* the page reads as zeros after the re-pin: rebuild */
    repin_said[i] = purged;
    sigbus_in[i]++;
}   /* returning retries the faulting read, which now sees the rebuilt data */

/* Ask vrange-run for a purge, as memory pressure would, and wait for it:
 * vrange-run finishes a purge asked for before it answers our next call. */
static void purge_now(void)
{
    int purged;
    kill(atoi(getenv("VRANGE_SUPERVISOR_PID")), SIGUSR1);
    vrange((unsigned long)buf + CHUNK, 4096, VRANGE_NONVOLATILE, 0, &purged);   /* chunk 1: pinned */
}

static const char *check(int i)
{
    size_t ok = 0, zero = 0;
    for (size_t k = 0; k < CHUNK; k++) {   /* reads the chunk: may raise SIGBUS */
        ok += buf[(size_t)i * CHUNK + k] == 'A' + i;
        zero += buf[(size_t)i * CHUNK + k] == 0;
    }
    return ok == CHUNK ? "ok" : zero == CHUNK ? "zero" : "bad";
}

int main(int argc, char **argv)
{
    int handler = argc > 1 && !strcmp(argv[1], "handler");
    setvbuf(stdout, NULL, _IONBF, 0);
    buf = mmap(NULL, NCHUNKS * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < NCHUNKS; i++)
        fill(i);
    for (int i = 0; i < NCHUNKS; i += 2)
        vrange((unsigned long)(buf + (size_t)i * CHUNK), CHUNK, VRANGE_VOLATILE, 0, NULL);
    if (handler) {
        struct sigaction sa = { 0 };
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGBUS, &sa, NULL);
    }
    printf("26 chunks of 16 KiB; even chunks VOLATILE; SIGBUS handler: %s\n",
           handler ? "yes" : "no");
    purge_now();
    printf("purged; now reading every chunk without re-pinning it\n");

    int bad = 0;
    for (int i = 0; i < NCHUNKS; i++) {
        printf("chunk %2d '%c' %-8s ", i, 'A' + i, i % 2 ? "pinned" : "volatile");
        const char *state = check(i);
        bad += !strcmp(state, "bad");
        printf("data=%s sigbus=%d", state, sigbus_in[i]);
        if (sigbus_in[i])
            printf(" (handler: re-pin said purged=%d, rebuilt)", repin_said[i]);
        printf("\n");
    }
    return bad ? 1 : 0;
}
