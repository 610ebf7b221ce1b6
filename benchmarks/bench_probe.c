/* bench_probe.c - timing probes run under vrange-run by benchmarks/run.py.
 *
 *   calls N          N vrange calls (VOLATILE/NONVOLATILE on one page) and N
 *                    calls of an unassigned syscall: "calls_us=.. bare_us=.."
 *   inline N         the same vrange calls made by a `syscall` instruction of
 *                    our own, not libc's syscall(): "calls_us=.."
 *   burst N R        R rounds of N such calls through syscall(), 50 ms apart
 *                    (the supervisor has caught up between rounds): the
 *                    median round's "calls_us=.."
 *   purge MB         MB MiB volatile and resident, SIGUSR1 to vrange-run, a
 *                    call (served after the purge): time for the purge, and
 *                    the same amount discarded by our own madvise:
 *                    "inject_ms=.. own_ms=.. purged=P"
 *   react VOL_MB PIN_MB HIGH ROOT V
 *                    VOL_MB MiB volatile, then up to PIN_MB MiB pinned written
 *                    256 KiB at a time until our cgroup's usage (cgroup v V
 *                    mounted at ROOT) reaches HIGH bytes; time from then until
 *                    the volatile pages are gone (mincore), writing on 256 KiB
 *                    at a time meanwhile: "react_ms=.."
 * Times from CLOCK_MONOTONIC.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "vrange.h"


static int resident_pages(char *p, size_t len)
{
    static unsigned char vec[1 << 20];
    mincore(p, len, vec);
    int n = 0;
    for (size_t i = 0; i < len / 4096; i++)
        n += vec[i] & 1;
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    if (!strcmp(argv[1], "calls")) {
        long n = atol(argv[2]);
        char *p = anon(4096);
        int purged;
        double t = now_us();
        for (long i = 0; i < n; i++)
            vrange((unsigned long)p, 4096, i & 1 ? VRANGE_NONVOLATILE : VRANGE_VOLATILE, 0,
                   &purged);
        double calls = (now_us() - t) / n;
        t = now_us();
        for (long i = 0; i < n; i++)
            syscall(1001, 0, 0, 0, 0, 0);
        printf("calls_us=%.3f bare_us=%.3f\n", calls, (now_us() - t) / n);
    } else if (!strcmp(argv[1], "inline")) {
        long n = atol(argv[2]), nr = vrange_nr();
        char *p = anon(4096);
        int purged;
        double t = now_us();
        for (long i = 0; i < n; i++) {
            long ret, mode = i & 1 ? VRANGE_NONVOLATILE : VRANGE_VOLATILE;
            register long flags __asm__("r10") = 0;
            register long out __asm__("r8") = (long)&purged;
            __asm__ __volatile__("syscall" : "=a"(ret)
                                 : "a"(nr), "D"(p), "S"(4096L), "d"(mode), "r"(flags), "r"(out)
                                 : "rcx", "r11", "memory");
        }
        printf("calls_us=%.3f\n", (now_us() - t) / n);
    } else if (!strcmp(argv[1], "burst") && argc > 3) {
        long n = atol(argv[2]), rounds = atol(argv[3]);
        char *p = anon(4096);
        int purged;
        double per[rounds];
        for (long r = 0; r < rounds; r++) {
            usleep(50000);
            double t = now_us();
            for (long i = 0; i < n; i++)
                vrange((unsigned long)p, 4096, i & 1 ? VRANGE_NONVOLATILE : VRANGE_VOLATILE, 0,
                       &purged);
            per[r] = (now_us() - t) / n;
        }
        for (long i = 1; i < rounds; i++)   /* insertion sort: a handful of rounds */
            for (long j = i; j > 0 && per[j] < per[j - 1]; j--) {
                double x = per[j];
                per[j] = per[j - 1];
                per[j - 1] = x;
            }
        printf("calls_us=%.3f\n", per[rounds / 2]);
    } else if (!strcmp(argv[1], "purge")) {
        size_t len = (size_t)atol(argv[2]) << 20;
        char *a = anon(len), *b = anon(len);
        memset(a, 1, len);
        memset(b, 1, len);
        vrange((unsigned long)a, len, VRANGE_VOLATILE, 0, NULL);
        const char *sup = getenv("VRANGE_SUPERVISOR_PID");
        int purged = -1;
        double t = now_us();
        kill(sup ? atoi(sup) : getppid(), SIGUSR1);
        vrange((unsigned long)a, 4096, VRANGE_NONVOLATILE, 0, &purged);   /* after the purge */
        double inject = now_us() - t;
        t = now_us();
        madvise(b, len, MADV_DONTNEED);
        printf("inject_ms=%.2f own_ms=%.2f purged=%d\n", inject / 1e3, (now_us() - t) / 1e3,
               purged);
    } else if (!strcmp(argv[1], "react") && argc == 7) {
        size_t vol = (size_t)atol(argv[2]) << 20, pin = (size_t)atol(argv[3]) << 20;
        long high = atol(argv[4]);
        int v2 = atoi(argv[6]) == 2;
        char line[512], usage_path[700] = "";
        FILE *cg = fopen("/proc/self/cgroup", "r");
        while (cg && fgets(line, sizeof line, cg)) {
            line[strcspn(line, "\n")] = 0;
            if ((v2 && !strncmp(line, "0::", 3)) || (!v2 && strstr(line, ":memory:")))
                snprintf(usage_path, sizeof usage_path, "%s%s/%s", argv[5], strrchr(line, ':') + 1,
                         v2 ? "memory.current" : "memory.usage_in_bytes");
        }
        char *v = anon(vol), *p = anon(pin);
        memset(v, 1, vol);
        vrange((unsigned long)v, vol, VRANGE_VOLATILE, 0, NULL);
        size_t done = 0;
        for (; done < pin; done += 256 << 10) {   /* until usage reaches the high mark */
            memset(p + done, 1, 256 << 10);
            FILE *u = fopen(usage_path, "r");
            long usage = 0;
            if (!u || fscanf(u, "%ld", &usage) != 1)
                return 4;
            fclose(u);
            if (usage >= high)
                break;
        }
        if (done >= pin) {
            printf("react_ms=never-crossed\n");
            return 1;
        }
        /* Go on allocating, as a program would (memcg v1 checks thresholds
         * only every 128 page charges), until the volatile pages are gone. */
        double t = now_us();
        while (resident_pages(v, vol) > 0) {
            if (done + (256 << 10) < pin) {
                done += 256 << 10;
                memset(p + done, 1, 256 << 10);
            }
            if (now_us() - t > 5e6) {
                printf("react_ms=timeout\n");
                return 1;
            }
        }
        printf("react_ms=%.2f\n", (now_us() - t) / 1e3);
    }
    return 0;
}
