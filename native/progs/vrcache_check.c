/* vrcache_check.c - checks an allocator (run with libvrcache.so preloaded).
 *
 * Usage: vrcache_check [SECTION...]   (default: basic realloc calloc align threads)
 *   basic      random malloc/free of small and large blocks, data checked
 *   realloc    grow and shrink across the threshold, contents kept
 *   calloc     calloc zeroes, also when it reuses a dirty cached block
 *   align      posix_memalign, aligned_alloc, memalign, valloc, pvalloc
 *   threads    4 threads at once, blocks handed between them, data checked
 *   pressure:MB  rounds of large blocks in many size classes, MB MiB a
 *              round, all freed after each round: the cache outgrows a
 *              small memory limit; blocks reused after a purge must act as
 *              fresh memory (written, read back, calloc'ed ones zero)
 * Prints one "SECTION checks=N bad=B" line per section and a final
 * "summary checks=N bad=B"; exit 0 iff B == 0.  The threshold between small
 * and large is read from VRCACHE_THRESHOLD (default 64 KiB) only to pick
 * sizes on both sides of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long checks, bad;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t threshold = 64 * 1024;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        pthread_mutex_lock(&count_lock);                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            if (bad++ < 20) {                                                    \
                fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__);             \
                fprintf(stderr, __VA_ARGS__);                                    \
                fputc('\n', stderr);                                             \
            }                                                                    \
        }                                                                        \
        pthread_mutex_unlock(&count_lock);                                       \
    } while (0)

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t word(uint64_t tag, size_t w)
{
    return (tag + 1) * 0x9E3779B97F4A7C15ull + w * 0xBF58476D1CE4E5B9ull;
}

/* Byte i of the pattern `tag` (little endian words). */
static unsigned char pattern(uint64_t tag, size_t i)
{
    return (unsigned char)(word(tag, i >> 3) >> (8 * (i & 7)));
}

static void fill(void *p, size_t len, uint64_t tag)
{
    unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = word(tag, i >> 3);
        memcpy(b + i, &w, 8);
    }
    for (; i < len; i++)
        b[i] = pattern(tag, i);
}

/* The first byte that is not the pattern's, or (size_t)-1. */
static size_t first_wrong(const void *p, size_t len, uint64_t tag)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w != word(tag, i >> 3))
            break;
    }
    for (; i < len; i++)
        if (b[i] != pattern(tag, i))
            return i;
    return (size_t)-1;
}

static size_t first_nonzero(const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i])
            return i;
    return (size_t)-1;
}

static int intact(const void *p, size_t len, uint64_t tag)
{
    return first_wrong(p, len, tag) == (size_t)-1;
}

/* A size: small (< threshold), around the threshold, or large. */
static size_t some_size(uint64_t *s)
{
    switch (rnd(s) % 6) {
    case 0: return rnd(s) % 2000 + 1;
    case 1: return threshold > 4096 ? threshold - rnd(s) % 4096 - 1 : 100;
    case 2: return threshold + rnd(s) % 8192;
    case 3: return threshold + rnd(s) % (256 * 1024);
    case 4: return (rnd(s) % 4 + 1) * 256 * 1024;    /* exact classes: reuse */
    default: return rnd(s) % (3 << 20) + 1;
    }
}

struct block {
    unsigned char *p;
    size_t len;
    uint64_t tag;
};

static void check_block(struct block *b, const char *where)
{
    size_t at = first_wrong(b->p, b->len, b->tag);
    CHECK(at == (size_t)-1, "%s: block %p len %zu tag %llu wrong at %zu", where, (void *)b->p,
          b->len, (unsigned long long)b->tag, at);
}

static void section_basic(void)
{
    enum { SLOTS = 48, STEPS = 3000 };
    struct block slot[SLOTS] = {{0}};
    uint64_t s = 12345;
    for (unsigned step = 0; step < STEPS; step++) {
        struct block *b = &slot[rnd(&s) % SLOTS];
        if (b->p) {
            check_block(b, "basic");
            free(b->p);
            b->p = NULL;
            continue;
        }
        b->len = some_size(&s);
        b->tag = step;
        b->p = malloc(b->len);
        CHECK(b->p != NULL, "malloc(%zu) failed", b->len);
        if (!b->p)
            continue;
        CHECK(((uintptr_t)b->p & 15) == 0, "malloc(%zu) = %p: not 16-byte aligned", b->len,
              (void *)b->p);
        size_t usable = malloc_usable_size(b->p);
        CHECK(usable >= b->len, "malloc_usable_size %zu < %zu", usable, b->len);
        if (b->len >= threshold) {    /* the slack is usable too */
            b->p[usable - 1] = 0x5A;
            CHECK(b->p[usable - 1] == 0x5A, "slack");
        }
        fill(b->p, b->len, b->tag);
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slot[i].p) {
            check_block(&slot[i], "basic end");
            free(slot[i].p);
        }
    }
    free(NULL);
}

static void section_realloc(void)
{
    size_t th = threshold;
    const size_t steps[] = {1000, th / 2 + 1, th + 1, th * 3, 300000, 5 << 20, 2 << 20,
                            2 << 20, th + 100, th - 1, 30000, 8 << 20, 100, 7 << 20,
                            (7 << 20) + 4096 * 3, 64, 1};
    for (uint64_t round = 0; round < 12; round++) {
        size_t len = steps[0];
        uint64_t tag = round * 100;
        unsigned char *p = realloc(NULL, len);
        CHECK(p != NULL, "realloc(NULL, %zu)", len);
        fill(p, len, tag);
        for (unsigned i = 1; i < sizeof steps / sizeof *steps; i++) {
            size_t next = steps[i];
            unsigned char *q = realloc(p, next);
            CHECK(q != NULL, "realloc(%zu -> %zu) failed", len, next);
            if (!q)
                break;
            size_t keep = len < next ? len : next;
            size_t at = first_wrong(q, keep, tag);
            CHECK(at == (size_t)-1, "realloc %zu -> %zu (round %llu): byte %zu lost", len, next,
                  (unsigned long long)round, at);
            CHECK(malloc_usable_size(q) >= next, "usable after realloc");
            p = q;
            len = next;
            tag++;
            fill(p, len, tag);
        }
        if (round % 2) {
            CHECK(realloc(p, 0) == NULL, "realloc(p, 0) frees and returns NULL");
        } else {
            free(p);
        }
    }
    /* reallocarray goes through realloc */
    size_t n = (size_t)threshold / 8 + 100;
    uint64_t *a = reallocarray(NULL, n, 8);
    CHECK(a != NULL, "reallocarray");
    for (size_t i = 0; i < n; i++)
        a[i] = i * 3;
    a = reallocarray(a, n * 4, 8);
    int ok = a != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = a[i] == i * 3;
    CHECK(ok, "reallocarray kept the data");
    /* through a volatile pointer: gcc sees no overflow and no use after it */
    void *(*volatile ra)(void *, size_t, size_t) = reallocarray;
    volatile size_t huge = SIZE_MAX / 4;
    errno = 0;
    CHECK(ra(a, huge, 8) == NULL && errno == ENOMEM, "reallocarray overflow");
    free(a);
}

static void section_calloc(void)
{
    size_t th = threshold;
    const size_t sizes[] = {100, 5000, th, th + 1, 100000, 1 << 20, (3 << 20) + 5, 6 << 20};
    unsigned reused = 0;
    for (unsigned round = 0; round < 10; round++) {
        for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t len = sizes[i];
            unsigned char *dirty = malloc(len);
            memset(dirty, 0xAB, len);
            free(dirty);
            /* same size class: a caching allocator hands back the dirty block */
            size_t asked = round % 2 ? len : (len + 3) / 4 * 4;
            unsigned char *z = round % 2 ? calloc(1, len) : calloc(asked / 4, 4);
            CHECK(z != NULL, "calloc(%zu)", asked);
            if (!z)
                continue;
            reused += z == dirty;
            size_t at = first_nonzero(z, asked);
            CHECK(at == (size_t)-1, "calloc(%zu) round %u (%s block): byte %zu is not zero", asked,
                  round, z == dirty ? "reused" : "new", at);
            fill(z, asked, round);
            free(z);
        }
    }
    /* fresh blocks, several at once */
    unsigned char *many[6];
    for (unsigned i = 0; i < 6; i++) {
        many[i] = calloc(1, th + i * 40000);
        CHECK(many[i] && first_nonzero(many[i], th + i * 40000) == (size_t)-1,
              "calloc(%zu), several at once", th + i * 40000);
    }
    for (unsigned i = 0; i < 6; i++)
        free(many[i]);
    volatile size_t huge = SIZE_MAX / 2;
    errno = 0;
    CHECK(calloc(huge, 4) == NULL && errno == ENOMEM, "calloc overflow");
    printf("calloc_reused=%u\n", reused);
}

static void section_align(void)
{
    const size_t aligns[] = {16, 64, 4096, 65536, 1 << 20, 4 << 20};
    const size_t sizes[] = {100, 70000, threshold, (1 << 20) + 5, 3 << 20};
    uint64_t tag = 0;
    for (unsigned a = 0; a < sizeof aligns / sizeof *aligns; a++) {
        for (unsigned z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            size_t al = aligns[a], len = sizes[z];
            void *p[3] = {NULL, NULL, NULL};
            int err = posix_memalign(&p[0], al, len);
            CHECK(err == 0, "posix_memalign(%zu, %zu) = %d", al, len, err);
            p[1] = aligned_alloc(al, (len + al - 1) / al * al);
            p[2] = memalign(al, len);
            for (int k = 0; k < 3; k++) {
                CHECK(p[k] && ((uintptr_t)p[k] & (al - 1)) == 0, "align %zu size %zu #%d: %p",
                      al, len, k, p[k]);
                if (p[k]) {
                    CHECK(malloc_usable_size(p[k]) >= len, "usable of aligned");
                    fill(p[k], len, ++tag);
                }
            }
            for (int k = 0; k < 3; k++) {
                if (p[k]) {
                    CHECK(intact(p[k], len, tag - 2 + k), "aligned block %d kept", k);
                    free(p[k]);
                }
            }
        }
    }
    for (unsigned z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        size_t len = sizes[z];
        unsigned char *v = valloc(len), *pv = pvalloc(len);
        CHECK(v && ((uintptr_t)v & 4095) == 0, "valloc(%zu)", len);
        CHECK(pv && ((uintptr_t)pv & 4095) == 0, "pvalloc(%zu)", len);
        CHECK(pv && malloc_usable_size(pv) >= (len + 4095) / 4096 * 4096, "pvalloc rounds up");
        if (v && pv) {
            fill(v, len, 1);
            fill(pv, (len + 4095) / 4096 * 4096, 2);
            CHECK(intact(v, len, 1) && intact(pv, (len + 4095) / 4096 * 4096, 2), "valloc data");
        }
        free(v);
        free(pv);
    }
    void *p = NULL;
    CHECK(posix_memalign(&p, 24, 100000) == EINVAL, "posix_memalign(24) is EINVAL");
    CHECK(posix_memalign(&p, 2, 100000) == EINVAL, "posix_memalign(2) is EINVAL");
}

/* ---- threads ---- */

#define MAILBOX 32
static struct block mailbox[MAILBOX];
static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;

static void *hammer(void *arg)
{
    uint64_t s = (uintptr_t)arg * 7919 + 1;
    enum { SLOTS = 12, STEPS = 1500 };
    struct block slot[SLOTS] = {{0}};
    for (unsigned step = 0; step < STEPS; step++) {
        struct block *b = &slot[rnd(&s) % SLOTS];
        unsigned op = rnd(&s) % 8;
        if (b->p && op < 3) {                   /* check and free */
            check_block(b, "thread");
            free(b->p);
            b->p = NULL;
        } else if (b->p && op < 5) {            /* realloc, contents kept */
            size_t next = some_size(&s);
            unsigned char *q = realloc(b->p, next);
            CHECK(q != NULL, "thread realloc");
            if (q) {
                size_t keep = b->len < next ? b->len : next;
                CHECK(intact(q, keep, b->tag), "thread realloc %zu -> %zu kept", b->len, next);
                b->p = q;
                b->len = next;
                b->tag = (uint64_t)arg << 32 | step;
                fill(q, next, b->tag);
            }
        } else if (b->p) {                      /* hand it to another thread */
            pthread_mutex_lock(&mailbox_lock);
            struct block *m = &mailbox[rnd(&s) % MAILBOX];
            struct block old = *m;
            *m = *b;
            pthread_mutex_unlock(&mailbox_lock);
            *b = old;                           /* and take what was there */
        } else {                                /* a new block */
            b->len = some_size(&s);
            b->tag = (uint64_t)arg << 32 | step;
            int zero = op == 7;
            b->p = zero ? calloc(1, b->len) : malloc(b->len);
            CHECK(b->p != NULL, "thread alloc");
            if (!b->p)
                continue;
            if (zero) {
                size_t at = first_nonzero(b->p, b->len);
                CHECK(at == (size_t)-1, "thread calloc(%zu) = %p: byte %zu is not zero", b->len,
                      (void *)b->p, at);
            }
            fill(b->p, b->len, b->tag);
        }
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slot[i].p) {
            check_block(&slot[i], "thread end");
            free(slot[i].p);
        }
    }
    return NULL;
}

static void section_threads(void)
{
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (unsigned i = 0; i < MAILBOX; i++) {
        if (mailbox[i].p) {
            check_block(&mailbox[i], "mailbox");
            free(mailbox[i].p);
        }
    }
}

/* ---- a cache larger than the memory limit ---- */

static void section_pressure(unsigned mb)
{
    /* Distinct size classes (4 per doubling above 64 KiB pages): each round
     * leaves its blocks in another bin, so the cache keeps growing. */
    const size_t sizes[] = {1280 << 10, 1536 << 10, 1792 << 10, 2048 << 10,
                            2560 << 10, 3072 << 10, 3584 << 10, 4096 << 10};
    enum { MAXB = 64 };
    struct block b[MAXB];
    uint64_t tag = 0;
    for (unsigned pass = 0; pass < 3; pass++) {
        for (unsigned r = 0; r < sizeof sizes / sizeof *sizes; r++) {
            size_t len = sizes[r] - 4096 * (pass % 2);     /* same class either way */
            unsigned n = (unsigned)(((size_t)mb << 20) / len);
            if (n > MAXB)
                n = MAXB;
            if (n == 0)
                n = 1;
            for (unsigned i = 0; i < n; i++) {
                int zero = i % 2;
                b[i].len = len;
                b[i].tag = ++tag;
                b[i].p = zero ? calloc(1, len) : malloc(len);
                CHECK(b[i].p != NULL, "pressure alloc");
                if (!b[i].p)
                    continue;
                if (zero) {
                    size_t at = first_nonzero(b[i].p, len);
                    CHECK(at == (size_t)-1, "pressure: calloc'ed block (pass %u) not zero at %zu",
                          pass, at);
                }
                fill(b[i].p, len, b[i].tag);
            }
            for (unsigned i = 0; i < n; i++) {
                if (b[i].p) {
                    check_block(&b[i], "pressure");
                    free(b[i].p);
                }
            }
        }
    }
}

static void run(const char *name)
{
    unsigned long c0 = checks, b0 = bad;
    if (!strcmp(name, "basic"))
        section_basic();
    else if (!strcmp(name, "realloc"))
        section_realloc();
    else if (!strcmp(name, "calloc"))
        section_calloc();
    else if (!strcmp(name, "align"))
        section_align();
    else if (!strcmp(name, "threads"))
        section_threads();
    else if (!strncmp(name, "pressure:", 9))
        section_pressure((unsigned)atoi(name + 9));
    else {
        fprintf(stderr, "unknown section %s\n", name);
        exit(2);
    }
    printf("%s checks=%lu bad=%lu\n", name, checks - c0, bad - b0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *env = getenv("VRCACHE_THRESHOLD");
    if (env && *env)
        threshold = strtoull(env, NULL, 0);
    if (threshold < 4096)
        threshold = 4096;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run(argv[i]);
    } else {
        const char *all[] = {"basic", "realloc", "calloc", "align", "threads"};
        for (unsigned i = 0; i < 5; i++)
            run(all[i]);
    }
    printf("summary checks=%lu bad=%lu\n", checks, bad);
    return bad ? 1 : 0;
}
