/* vrange_script.c - performs vrange calls read from stdin, prints each result.
 *
 * Built once per ABI (-DVRANGE_ABI=...).  Tests write a script and check the
 * printed answers, so every argument rule is exercised by a real traced
 * program.  Regions are named by a letter; offsets and lengths in pages.
 *
 *   map R PAGES KIND     KIND: anon | anon32 (below 4 GiB) | shared | file | ro |
 *                        locked (mlock after mmap) | maplocked (mmap MAP_LOCKED) |
 *                        rotail (anon, bytes 0x5a, the last page then made read-only)
 *   fill R SEED [OFF N]  write a pattern derived from SEED into every page (or OFF..OFF+N)
 *   check R SEED [OFF N] print "check R good=G zero=Z bad=B" (pages; all or OFF..OFF+N)
 *   vol R OFF N [ARG]    mark volatile (ARG: flags / behavior, default 0)
 *   nonvol R OFF N       mark nonvolatile
 *   raw R BYTEOFF LEN MODE A3 A4   raw syscall at region R + BYTEOFF (R '-': BYTEOFF is
 *                        an absolute address); numbers in any C base
 *   badptr vol|nonvol R OFF N   call with a read-only `purged` pointer
 *   nonvolat R OFF N P BYTEOFF  mark nonvolatile with `purged` at region P + BYTEOFF,
 *                        then print "at P BYTEOFF bytes=HHHHHHHH" (the 4 bytes there)
 *   unmap R OFF N        punch a hole
 *   dontneed R OFF N     madvise(MADV_DONTNEED): the program frees pages itself
 *   mlock R OFF N
 *   mprotect R OFF N r|rw|none
 *   mlockall             mlockall(MCL_CURRENT | MCL_FUTURE)
 *   munlockall
 *   fork-pin R           fork a child that re-pins its copy of R and keeps it
 *                        (COW-shared with us) until we exit
 *   purge                SIGUSR1 to vrange-run, then a barrier call
 *   sleeper              start a thread that sleeps in read() until we exit (it is
 *                        running when the command returns)
 *   int80 R OFF N        VOLATILE through the 32-bit entry (int $0x80): its arch
 *                        is i386, which the filter must not trap
 *   touch R OFF          read one byte of page OFF: "touched R OFF value=V"
 *   sysread R OFF        read(2) from /dev/zero into page OFF (a syscall touching it)
 *   rss                  print "rss KB"
 *   perm R OFF           print "perm R OFF PERMS" (the mapping's rwxp from /proc/self/maps)
 *
 * Each vrange call prints: "ret=R errno=E purged=P" (purged -1 if untouched).
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGE 4096
static char *region[26];
static size_t region_pages[26];

#if VRANGE_ABI == VRANGE_ABI_NATIVE
#define VRANGE_NR_OF_ABI vrange_nr()
#else
#define VRANGE_NR_OF_ABI VRANGE_NR
#endif

static long call(unsigned long start, size_t len, int mode, long arg, int *purged)
{
#if VRANGE_ABI == VRANGE_ABI_V7
    (void)purged;
    return vrange(start, len, mode, (int)arg);
#elif VRANGE_ABI == VRANGE_ABI_V10
    (void)arg;
    return vrange(start, len, mode, purged);
#else
    return vrange(start, len, mode, (unsigned)arg, purged);
#endif
}

static void report(long ret, int purged)
{
    printf("ret=%ld errno=%d purged=%d\n", ret, ret < 0 ? errno : 0, purged);
    fflush(stdout);
}

static uint64_t pattern(unsigned seed, size_t page, size_t word)
{
    return ((uint64_t)seed << 40) ^ (page * 0x9E3779B97F4A7C15ull) ^ (word + 1);
}

static int sleeper_pipes[2][2];   /* [0]: "started", [1]: never written */

static void *sleep_in_read(void *unused)
{
    char c;
    (void)unused;
    (void)!write(sleeper_pipes[0][1], "s", 1);
    (void)!read(sleeper_pipes[1][0], &c, 1);   /* sleeps until we exit */
    return NULL;
}

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    if (f)
        fclose(f);
    return resident * (PAGE / 1024);
}

int main(void)
{
    char op[32], name[4], kind[16];
    while (scanf("%31s", op) == 1) {
        int r;
        size_t off, n, at_off;
        long arg = 0;
        int purged = -1;
        if (!strcmp(op, "map") && scanf("%3s %zu %15s", name, &n, kind) == 3) {
            r = name[0] - 'A';
            int shared = !strcmp(kind, "shared");
            int prot = strcmp(kind, "ro") ? PROT_READ | PROT_WRITE : PROT_READ;
            int fd = -1;
            if (!strcmp(kind, "file")) {
                FILE *tmp = tmpfile();
                fd = fileno(tmp);
                if (ftruncate(fd, (off_t)n * PAGE))
                    return 3;
            }
            region[r] = mmap(NULL, n * PAGE, prot,
                             (shared ? MAP_SHARED : MAP_PRIVATE) | (fd < 0 ? MAP_ANONYMOUS : 0) |
                                 (strcmp(kind, "anon32") ? 0 : MAP_32BIT) |
                                 (strcmp(kind, "maplocked") ? 0 : MAP_LOCKED),
                             fd, 0);
            if (region[r] == MAP_FAILED)
                return 3;
            region_pages[r] = n;
            if (!strcmp(kind, "locked") && mlock(region[r], n * PAGE))
                return 4;
            if (!strcmp(kind, "rotail")) {
                memset(region[r], 0x5a, n * PAGE);
                if (mprotect(region[r] + (n - 1) * PAGE, PAGE, PROT_READ))
                    return 4;
            }
            printf("mapped %c\n", name[0]);
        } else if (!strcmp(op, "fill") && scanf("%3s %ld", name, &arg) == 2) {
            r = name[0] - 'A';
            uint64_t *w = (uint64_t *)region[r];
            size_t first = 0, last = region_pages[r];
            if (scanf(" %zu %zu", &off, &n) == 2) {
                first = off;
                last = off + n;
            }
            for (size_t p = first; p < last; p++)
                for (size_t i = 0; i < PAGE / 8; i++)
                    w[p * PAGE / 8 + i] = pattern((unsigned)arg, p, i);
        } else if (!strcmp(op, "check") && scanf("%3s %ld", name, &arg) == 2) {
            r = name[0] - 'A';
            uint64_t *w = (uint64_t *)region[r];
            size_t good = 0, zero = 0, bad = 0, first = 0, last = region_pages[r];
            if (scanf(" %zu %zu", &off, &n) == 2) {
                first = off;
                last = off + n;
            }
            for (size_t p = first; p < last; p++) {
                int is_good = 1, is_zero = 1;
                for (size_t i = 0; i < PAGE / 8; i++) {
                    uint64_t v = w[p * PAGE / 8 + i];
                    is_good &= v == pattern((unsigned)arg, p, i);
                    is_zero &= v == 0;
                }
                good += is_good;
                zero += is_zero && !is_good;
                bad += !is_good && !is_zero;
            }
            printf("check %c good=%zu zero=%zu bad=%zu\n", name[0], good, zero, bad);
        } else if ((!strcmp(op, "vol") || !strcmp(op, "nonvol")) &&
                   scanf("%3s %zu %zu", name, &off, &n) == 3) {
            int volatile_ = !strcmp(op, "vol");
            if (volatile_ && scanf("%li", &arg) != 1)
                arg = 0;
            r = name[0] - 'A';
            long ret = call((unsigned long)(region[r] + off * PAGE), n * PAGE,
                            volatile_ ? VRANGE_VOLATILE : VRANGE_NONVOLATILE, arg, &purged);
            report(ret, purged);
        } else if (!strcmp(op, "raw") && scanf("%3s", name) == 1) {
            unsigned long start, len, a3, a4;
            long mode;
            if (scanf("%li %li %li %li %li", (long *)&start, (long *)&len, &mode,
                      (long *)&a3, (long *)&a4) != 5)
                return 2;
            if (name[0] != '-')
                start += (unsigned long)region[name[0] - 'A'];
#if VRANGE_ABI == VRANGE_ABI_NATIVE
            long ret = syscall(vrange_nr(), start, len, mode, a3, a4);
#else
            long ret = syscall(VRANGE_NR, start, len, mode, a3, a4);
#endif
            report(ret, purged);
        } else if (!strcmp(op, "badptr") &&
                   scanf("%15s %3s %zu %zu", kind, name, &off, &n) == 4) {
            static int *ro;
            if (!ro)
                ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            r = name[0] - 'A';
            long ret = call((unsigned long)(region[r] + off * PAGE), n * PAGE,
                            strcmp(kind, "vol") ? VRANGE_NONVOLATILE : VRANGE_VOLATILE, 0, ro);
            report(ret, purged);
        } else if (!strcmp(op, "nonvolat") &&
                   scanf("%3s %zu %zu %3s %zu", name, &off, &n, kind, &at_off) == 5) {
            unsigned char *at = (unsigned char *)region[kind[0] - 'A'] + at_off;
            r = name[0] - 'A';
            long ret = call((unsigned long)(region[r] + off * PAGE), n * PAGE,
                            VRANGE_NONVOLATILE, 0, (int *)at);
            report(ret, purged);
            printf("at %c %zu bytes=%02x%02x%02x%02x\n", kind[0], at_off, at[0], at[1], at[2], at[3]);
        } else if (!strcmp(op, "unmap") && scanf("%3s %zu %zu", name, &off, &n) == 3) {
            r = name[0] - 'A';
            munmap(region[r] + off * PAGE, n * PAGE);
        } else if (!strcmp(op, "dontneed") && scanf("%3s %zu %zu", name, &off, &n) == 3) {
            r = name[0] - 'A';
            if (madvise(region[r] + off * PAGE, n * PAGE, MADV_DONTNEED))
                return 4;
        } else if (!strcmp(op, "mprotect") &&
                   scanf("%3s %zu %zu %15s", name, &off, &n, kind) == 4) {
            int prot = !strcmp(kind, "rw") ? PROT_READ | PROT_WRITE
                       : !strcmp(kind, "r") ? PROT_READ : PROT_NONE;
            if (mprotect(region[name[0] - 'A'] + off * PAGE, n * PAGE, prot))
                return 4;
        } else if (!strcmp(op, "mlock") && scanf("%3s %zu %zu", name, &off, &n) == 3) {
            r = name[0] - 'A';
            if (mlock(region[r] + off * PAGE, n * PAGE))
                return 4;
        } else if (!strcmp(op, "mlockall")) {
            if (mlockall(MCL_CURRENT | MCL_FUTURE))
                return 4;
        } else if (!strcmp(op, "munlockall")) {
            munlockall();
        } else if (!strcmp(op, "purge")) {
            /* The supervisor serves a purge it was asked for before any later
             * call of this process, so the barrier makes it synchronous. */
            request_purge();
            static char barrier[2 * PAGE] __attribute__((aligned(PAGE)));
            int p;
            call((unsigned long)barrier, PAGE, VRANGE_NONVOLATILE, 0, &p);
            printf("purged\n");
        } else if (!strcmp(op, "sleeper")) {
            pthread_t thread;
            char c;
            if (pipe(sleeper_pipes[0]) || pipe(sleeper_pipes[1]) ||
                pthread_create(&thread, NULL, sleep_in_read, NULL) ||
                read(sleeper_pipes[0][0], &c, 1) != 1)
                return 6;
        } else if (!strcmp(op, "fork-pin") && scanf("%3s", name) == 1) {
            int ready[2], hold[2];
            if (pipe(ready) || pipe(hold))
                return 5;
            r = name[0] - 'A';
            fflush(stdout);
            if (fork() == 0) {
                char c;
                close(ready[0]);
                close(hold[1]);
                call((unsigned long)region[r], region_pages[r] * PAGE, VRANGE_NONVOLATILE, 0,
                     &purged);
                (void)!write(ready[1], "p", 1);
                (void)!read(hold[0], &c, 1);   /* EOF when the parent exits */
                _exit(0);
            }
            char c;
            close(ready[1]);
            close(hold[0]);
            if (read(ready[0], &c, 1) != 1)
                return 5;
            printf("child pinned %c\n", name[0]);
        } else if (!strcmp(op, "int80") && scanf("%3s %zu %zu", name, &off, &n) == 3) {
            r = name[0] - 'A';
            long ret;
            long nr = VRANGE_NR_OF_ABI;
            __asm__ volatile("int $0x80"
                             : "=a"(ret)
                             : "a"(nr), "b"(region[r] + off * PAGE), "c"(n * PAGE),
                               "d"(VRANGE_VOLATILE), "S"(0), "D"(0)
                             : "memory");
            if (ret < 0) {
                errno = (int)-ret;
                ret = -1;
            }
            report(ret, purged);
        } else if (!strcmp(op, "touch") && scanf("%3s %zu", name, &off) == 2) {
            volatile char *p = region[name[0] - 'A'] + off * PAGE;
            printf("touched %c %zu value=%d\n", name[0], off, *p);
        } else if (!strcmp(op, "sysread") && scanf("%3s %zu", name, &off) == 2) {
            static int zero = -1;
            if (zero < 0)
                zero = open("/dev/zero", O_RDONLY);
            report(read(zero, region[name[0] - 'A'] + off * PAGE, 64), purged);
        } else if (!strcmp(op, "perm") && scanf("%3s %zu", name, &off) == 2) {
            unsigned long at = (unsigned long)region[name[0] - 'A'] + off * PAGE, lo, hi;
            char perms[8] = "none", line[512];
            FILE *maps = fopen("/proc/self/maps", "r");
            while (maps && fgets(line, sizeof line, maps))
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= at && at < hi)
                    break;
            if (maps)
                fclose(maps);
            printf("perm %c %zu %s\n", name[0], off, perms);
        } else if (!strcmp(op, "rss")) {
            printf("rss %ld\n", rss_kb());
        } else {
            fprintf(stderr, "vrange_script: bad command %s\n", op);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
