/* vrcache.c - a volatile-caching allocator for large blocks (LD_PRELOAD).
 *
 *   gcc -O2 -Wall -Werror -shared -fPIC -pthread -Inative/include \
 *       -o libvrcache.so native/vrcache/vrcache.c -ldl
 *   VRCACHE_STRATEGY=vrange vrange-run env LD_PRELOAD=$PWD/libvrcache.so ./prog
 *
 * Blocks of at least VRCACHE_THRESHOLD bytes (default 64 KiB) get their own
 * anonymous mapping; smaller ones go to the next allocator (libc).  A freed
 * mapping is kept in a cache, binned by size class, and handed out again to
 * a request of the same class.  What happens to the memory of a cached block
 * is the strategy (VRCACHE_STRATEGY):
 *
 *   vrange    mark it volatile (one vrange call); re-pin it on reuse (one
 *             call).  A block purged meanwhile is simply fresh memory.
 *             Without vrange-run (ENOSYS) this falls back to dontneed.
 *   dontneed  madvise(MADV_DONTNEED): the pages go, the mapping stays.
 *   free      madvise(MADV_FREE): the kernel takes the pages if it needs them.
 *   unmap     munmap at once; nothing is cached.
 *   keep      keep everything (the pages stay resident).
 *
 * (env(1) sets the preload inside vrange-run, so the supervisor itself keeps
 * libc's malloc.)
 *
 * The bookkeeping (one record per mapping, a hash table from address to
 * record, the bins) lives in memory of its own, never in a block: a purge
 * can only ever take a block's contents, never the allocator's state.
 * Size classes are whole pages up to 16 pages, then 4 per doubling (at most
 * 25% slack, usable: malloc_usable_size).  Reuse is last-freed-first, the
 * block least likely to have been purged (vrange-run purges oldest first).
 * Blocks are page aligned, so free() of anything else goes to libc without
 * taking the lock.  One mutex guards the bins and the table; vrange calls
 * and madvise run outside it.  realloc between large sizes moves the pages
 * with mremap (no copy, no vrange call).
 *
 * Other settings: VRCACHE_MAX_CACHED (bytes; keep/dontneed/free: blocks
 * beyond it are unmapped instead of cached), VRCACHE_STATS=1 (counters on
 * stderr at exit, from processes that made a large allocation),
 * VRCACHE_VERBOSE=1 (say when vrange falls back).  Sizes accept a k/m/g
 * suffix.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vrange.h"

#define PAGE 4096UL
#define NBINS 256
#define MAX_BLOCK ((size_t)1 << 46)   /* larger requests fail with ENOMEM */

enum strategy { S_VRANGE, S_DONTNEED, S_FREE, S_UNMAP, S_KEEP };
static const char *const strategy_names[] = {"vrange", "dontneed", "free", "unmap", "keep"};

enum state { LIVE = 1, CACHED, BUSY };

/* One mapping.  Records are allocated from pages of their own (rec_pool). */
struct chunk {
    uintptr_t addr;
    size_t size;            /* mapped bytes: a size class, whole pages */
    struct chunk *hnext;    /* hash chain */
    struct chunk *next;     /* bin list, or the list of unused records */
    unsigned char state;
    unsigned char bin;
    unsigned char volatile_;   /* marked volatile (strategy vrange) */
    unsigned char clean;       /* known to read as zeros */
};

/* The next allocator (libc), found with dlsym(RTLD_NEXT). */
static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static size_t (*real_usable_size)(void *);

/* Settings. */
static size_t threshold = 64 * 1024;
static int strategy = S_VRANGE;     /* read and changed atomically (fallback) */
static size_t max_cached;            /* 0: no cap */
static int verbose, print_stats;

/* State, under `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk **table;
static size_t table_size, table_count;
static struct chunk *free_records;
static struct chunk *bins[NBINS];
static size_t cached_bytes;

/* Counters (atomic adds). */
static struct {
    unsigned long allocs, from_cache, fresh, purged_reuses, vrange_calls, vrange_errors,
        madvise_calls, unmaps, remaps, cached_peak, fallbacks;
} st;
#define COUNT(field, n) __atomic_add_fetch(&st.field, (n), __ATOMIC_RELAXED)

/* ---- start-up: dlsym may allocate before the real allocator is known ---- */

static int init_state;          /* 0 not yet, 1 running, 2 done */
static pthread_t init_thread;
static _Alignas(16) char boot[64 * 1024];
static size_t boot_used;

static int in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

/* A bump allocator for the calls dlsym makes while we look up the real
 * functions: never freed, already zero.  Each block has a 16-byte header
 * holding its size. */
static void *boot_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    size_t start = (boot_used + 16 + align - 1) & ~(align - 1);
    if (size > sizeof boot || start + size > sizeof boot)
        return NULL;
    boot_used = start + size;
    *(size_t *)(boot + start - 16) = size;
    return boot + start;
}

static size_t boot_size(const void *p)
{
    return *(const size_t *)((const char *)p - 16);
}

static void say(const char *msg)
{
    ssize_t ignored = write(2, msg, strlen(msg));
    (void)ignored;
}

static size_t parse_size(const char *text, size_t fallback)
{
    if (!text || !*text)
        return fallback;
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    switch (*end) {
    case 'g': case 'G': v <<= 10; /* fall through */
    case 'm': case 'M': v <<= 10; /* fall through */
    case 'k': case 'K': v <<= 10; break;
    default: break;
    }
    return (size_t)v;
}

static void *need(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        say("vrcache: the next allocator has no ");
        say(name);
        say("()\n");
        abort();
    }
    return f;
}

static void init_now(void)
{
    real_malloc = need("malloc");
    real_free = need("free");
    real_calloc = need("calloc");
    real_realloc = need("realloc");
    real_memalign = need("memalign");
    real_aligned_alloc = need("aligned_alloc");
    real_posix_memalign = need("posix_memalign");
    real_valloc = need("valloc");
    real_pvalloc = need("pvalloc");
    real_usable_size = need("malloc_usable_size");

    threshold = parse_size(getenv("VRCACHE_THRESHOLD"), threshold);
    if (threshold < 1)
        threshold = 1;
    max_cached = parse_size(getenv("VRCACHE_MAX_CACHED"), 0);
    const char *s = getenv("VRCACHE_VERBOSE");
    verbose = s && *s && strcmp(s, "0");
    s = getenv("VRCACHE_STATS");
    print_stats = s && *s && strcmp(s, "0");
    s = getenv("VRCACHE_STRATEGY");
    if (s && *s) {
        int found = -1;
        for (int i = 0; i < (int)(sizeof strategy_names / sizeof *strategy_names); i++)
            if (!strcmp(s, strategy_names[i]))
                found = i;
        if (found < 0) {
            say("vrcache: unknown VRCACHE_STRATEGY (vrange, dontneed, free, unmap, keep): "
                "using vrange\n");
            found = S_VRANGE;
        }
        strategy = found;
    }
}

/* 1 once the real functions are known; 0 while this thread is looking them
 * up (the caller then serves from `boot`).  Other threads wait. */
static int ready(void)
{
    if (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2)
        return 1;
    int expected = 0;
    if (__atomic_compare_exchange_n(&init_state, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        init_thread = pthread_self();
        init_now();
        __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
        return 1;
    }
    if (expected == 1 && pthread_equal(init_thread, pthread_self()))
        return 0;
    while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
        sched_yield();
    return 1;
}

/* ---- records and the address table (caller holds `lock`) ---- */

static struct chunk *new_record(void)
{
    if (!free_records) {
        size_t len = 64 * 1024;
        struct chunk *block = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (block == MAP_FAILED)
            return NULL;
        for (size_t i = 0; i < len / sizeof *block; i++) {
            block[i].next = free_records;
            free_records = &block[i];
        }
    }
    struct chunk *c = free_records;
    free_records = c->next;
    memset(c, 0, sizeof *c);
    return c;
}

static void drop_record(struct chunk *c)
{
    c->state = 0;
    c->next = free_records;
    free_records = c;
}

static size_t slot(uintptr_t addr, size_t size)
{
    return (size_t)(((addr >> 12) * 0x9E3779B97F4A7C15ull) >> 20) & (size - 1);
}

static int table_grow(void)
{
    size_t size = table_size ? table_size * 2 : 1024;
    struct chunk **t = mmap(NULL, size * sizeof *t, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return -1;
    for (size_t i = 0; i < table_size; i++) {
        for (struct chunk *c = table[i], *next; c; c = next) {
            next = c->hnext;
            size_t j = slot(c->addr, size);
            c->hnext = t[j];
            t[j] = c;
        }
    }
    if (table)
        munmap(table, table_size * sizeof *table);
    table = t;
    table_size = size;
    return 0;
}

static int table_insert(struct chunk *c)
{
    if (table_count >= table_size && table_grow() && !table)
        return -1;    /* a full table still works, only slower */
    size_t j = slot(c->addr, table_size);
    c->hnext = table[j];
    table[j] = c;
    table_count++;
    return 0;
}

static struct chunk *table_find(uintptr_t addr)
{
    if (!table)
        return NULL;
    for (struct chunk *c = table[slot(addr, table_size)]; c; c = c->hnext)
        if (c->addr == addr)
            return c;
    return NULL;
}

static void table_remove(struct chunk *c)
{
    struct chunk **p = &table[slot(c->addr, table_size)];
    while (*p != c)
        p = &(*p)->hnext;
    *p = c->hnext;
    table_count--;
}

/* ---- size classes: whole pages up to 16, then 4 classes per doubling ---- */

static size_t class_of(size_t size, unsigned *bin)
{
    size_t pages = (size + PAGE - 1) / PAGE;
    if (pages == 0)
        pages = 1;
    if (pages <= 16) {
        *bin = (unsigned)pages;
        return pages * PAGE;
    }
    unsigned k = 63 - (unsigned)__builtin_clzl(pages - 1);   /* 2^k < pages <= 2^(k+1) */
    size_t step = (size_t)1 << (k - 2);
    size_t cls = (pages + step - 1) & ~(step - 1);
    *bin = 16 + (k - 4) * 4 + (unsigned)((cls - ((size_t)1 << k)) / step);
    return cls * PAGE;
}

/* ---- the large-block paths ---- */

static int current_strategy(void)
{
    return __atomic_load_n(&strategy, __ATOMIC_RELAXED);
}

/* vrange is not there (not under vrange-run, or it is gone): from now on
 * behave as dontneed. */
static void fall_back(void)
{
    int expected = S_VRANGE;
    if (__atomic_compare_exchange_n(&strategy, &expected, S_DONTNEED, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        COUNT(fallbacks, 1);
        if (verbose)
            say("vrcache: vrange() is not available (not under vrange-run?): "
                "using dontneed\n");
    }
}

static void *map_fresh(size_t size, size_t align)
{
    size_t len = size + (align > PAGE ? align - PAGE : 0);
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (align <= PAGE)
        return base;
    char *p = (char *)(((uintptr_t)base + align - 1) & ~(uintptr_t)(align - 1));
    if (p > base)
        munmap(base, (size_t)(p - base));
    if (p + size < base + len)
        munmap(p + size, (size_t)(base + len - (p + size)));
    return p;
}

/* Re-pin a block taken from the cache; say whether it still has its old
 * contents (0) or may not (1). */
static int repin(struct chunk *c)
{
    if (!c->volatile_)
        return 0;
    int purged = 0;
    int saved = errno;
    ssize_t done = vrange(c->addr, c->size, VRANGE_NONVOLATILE, 0, &purged);
    COUNT(vrange_calls, 1);
    if (done != (ssize_t)c->size) {
        /* vrange-run is gone (ENOSYS): nothing can be purged any more and
         * the block is usable as it is.  Either way its contents are
         * unknown, which malloc allows and calloc's memset covers. */
        COUNT(vrange_errors, 1);
        if (done < 0 && errno == ENOSYS)
            fall_back();
        purged = 1;
    }
    errno = saved;
    c->volatile_ = 0;
    if (purged)
        COUNT(purged_reuses, 1);
    return purged;
}

static void *alloc_large(size_t size, size_t align, int zero)
{
    if (size > MAX_BLOCK || align > MAX_BLOCK) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned bin;
    size_t csize = class_of(size, &bin);
    struct chunk *c = NULL;
    COUNT(allocs, 1);
    pthread_mutex_lock(&lock);
    if (align <= PAGE) {
        c = bins[bin];
        if (c) {
            bins[bin] = c->next;
            cached_bytes -= c->size;
            c->state = LIVE;
        }
    }
    pthread_mutex_unlock(&lock);
    if (c) {
        COUNT(from_cache, 1);
        repin(c);
        if (zero && !c->clean)
            memset((void *)c->addr, 0, size);
        c->clean = 0;
        return (void *)c->addr;
    }
    void *p = map_fresh(csize, align);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    COUNT(fresh, 1);
    pthread_mutex_lock(&lock);
    c = new_record();
    if (c) {
        c->addr = (uintptr_t)p;
        c->size = csize;
        c->bin = (unsigned char)bin;
        c->state = LIVE;
        if (table_insert(c)) {
            drop_record(c);
            c = NULL;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!c) {
        munmap(p, csize);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* Give back a block: `c` is BUSY, taken out of sight by the caller. */
static void release(struct chunk *c)
{
    int saved = errno;
    int s = current_strategy();
    pthread_mutex_lock(&lock);
    if (s == S_UNMAP || (max_cached && s != S_VRANGE && cached_bytes + c->size > max_cached)) {
        table_remove(c);
        uintptr_t addr = c->addr;
        size_t size = c->size;
        drop_record(c);
        pthread_mutex_unlock(&lock);
        munmap((void *)addr, size);
        COUNT(unmaps, 1);
        errno = saved;
        return;
    }
    pthread_mutex_unlock(&lock);

    c->clean = 0;
    if (s == S_VRANGE) {
        ssize_t done = vrange(c->addr, c->size, VRANGE_VOLATILE, 0, NULL);
        COUNT(vrange_calls, 1);
        if (done == (ssize_t)c->size) {
            c->volatile_ = 1;
        } else {
            COUNT(vrange_errors, 1);
            if (done < 0 && errno == ENOSYS) {
                fall_back();
            } else if (done > 0) {   /* a short count (mlock): undo it */
                int ignored;
                vrange(c->addr, (size_t)done, VRANGE_NONVOLATILE, 0, &ignored);
                COUNT(vrange_calls, 1);
            }
            s = S_DONTNEED;
        }
    }
    if (s == S_FREE) {
        COUNT(madvise_calls, 1);
        if (madvise((void *)c->addr, c->size, MADV_FREE))
            s = S_DONTNEED;     /* before Linux 4.5 */
    }
    if (s == S_DONTNEED) {
        COUNT(madvise_calls, 1);
        c->clean = !madvise((void *)c->addr, c->size, MADV_DONTNEED);
    }

    pthread_mutex_lock(&lock);
    c->state = CACHED;
    c->next = bins[c->bin];
    bins[c->bin] = c;
    cached_bytes += c->size;
    if (cached_bytes > st.cached_peak)
        st.cached_peak = cached_bytes;
    pthread_mutex_unlock(&lock);
    errno = saved;
}

static void bad_pointer(const char *what)
{
    say("vrcache: ");
    say(what);
    say(": invalid pointer (freed twice?)\n");
    abort();
}

/* Our record of `p` (now BUSY), or NULL if `p` is not ours.  Blocks are
 * page aligned, so anything else is libc's without taking the lock. */
static struct chunk *take(void *p, const char *what)
{
    if ((uintptr_t)p & (PAGE - 1))
        return NULL;
    pthread_mutex_lock(&lock);
    struct chunk *c = table_find((uintptr_t)p);
    if (c) {
        if (c->state != LIVE) {
            pthread_mutex_unlock(&lock);
            bad_pointer(what);
        }
        c->state = BUSY;
    }
    pthread_mutex_unlock(&lock);
    return c;
}

static struct chunk *peek(void *p)
{
    if ((uintptr_t)p & (PAGE - 1))
        return NULL;
    pthread_mutex_lock(&lock);
    struct chunk *c = table_find((uintptr_t)p);
    pthread_mutex_unlock(&lock);
    return c;
}

/* ---- the interface ---- */

void *malloc(size_t size)
{
    if (!ready())
        return boot_alloc(size, 16);
    if (size < threshold)
        return real_malloc(size);
    return alloc_large(size, PAGE, 0);
}

void free(void *p)
{
    if (!p || in_boot(p))
        return;
    if (!ready())
        return;     /* nothing but boot blocks exists yet */
    struct chunk *c = take(p, "free");
    if (c)
        release(c);
    else
        real_free(p);
}

void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!ready())
        return boot_alloc(total, 16);
    if (total < threshold)
        return real_calloc(n, size);
    return alloc_large(total, PAGE, 1);
}

static size_t usable(void *p, struct chunk **ours)
{
    *ours = NULL;
    if (in_boot(p))
        return boot_size(p);
    struct chunk *c = peek(p);
    if (c) {
        *ours = c;
        return c->size;
    }
    return real_usable_size(p);
}

void *realloc(void *p, size_t size)
{
    if (!p)
        return malloc(size);
    if (!ready() || in_boot(p)) {
        void *q = malloc(size);
        if (q && in_boot(p))
            memcpy(q, p, boot_size(p) < size ? boot_size(p) : size);
        return q;
    }
    if (size == 0) {      /* as glibc: free and return NULL */
        free(p);
        return NULL;
    }
    struct chunk *c;
    size_t old = usable(p, &c);
    if (!c) {             /* libc's block */
        if (size < threshold)
            return real_realloc(p, size);
        void *q = alloc_large(size, PAGE, 0);
        if (q) {
            memcpy(q, p, old < size ? old : size);
            real_free(p);
        }
        return q;
    }
    if (size < threshold) {    /* ours, going small: to libc */
        void *q = real_malloc(size);
        if (q) {
            memcpy(q, p, size);
            free(p);
        }
        return q;
    }
    unsigned bin;
    if (size > MAX_BLOCK) {
        errno = ENOMEM;
        return NULL;
    }
    size_t csize = class_of(size, &bin);
    if (csize == old)
        return p;
    /* Another class: move the pages with mremap (no copy, no faults).  The
     * block is live, hence not volatile, while it moves. */
    c = take(p, "realloc");
    pthread_mutex_lock(&lock);
    table_remove(c);
    pthread_mutex_unlock(&lock);
    void *q = mremap(p, old, csize, MREMAP_MAYMOVE);
    pthread_mutex_lock(&lock);
    if (q != MAP_FAILED) {
        c->addr = (uintptr_t)q;
        c->size = csize;
        c->bin = (unsigned char)bin;
        COUNT(remaps, 1);
    }
    table_insert(c);    /* cannot fail: the table had room for it */
    c->state = LIVE;
    pthread_mutex_unlock(&lock);
    if (q == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return q;
}

static int power_of_two(size_t v)
{
    return v && !(v & (v - 1));
}

void *memalign(size_t align, size_t size)
{
    if (!ready())
        return boot_alloc(size, align);
    if (size < threshold)
        return real_memalign(align, size);
    if (!power_of_two(align)) {           /* as glibc: the next power of two */
        size_t a = 1;
        while (a < align && a)
            a <<= 1;
        if (!a) {
            errno = EINVAL;
            return NULL;
        }
        align = a;
    }
    return alloc_large(size, align < PAGE ? PAGE : align, 0);
}

void *aligned_alloc(size_t align, size_t size)
{
    if (!ready())
        return boot_alloc(size, align);
    if (size < threshold)
        return real_aligned_alloc(align, size);
    return memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (!ready()) {
        void *p = boot_alloc(size, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    if (size < threshold)
        return real_posix_memalign(out, align, size);
    if (!power_of_two(align) || align % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = alloc_large(size, align < PAGE ? PAGE : align, 0);
    int err = errno;
    errno = saved;
    if (!p)
        return err;
    *out = p;
    return 0;
}

void *valloc(size_t size)
{
    if (!ready())
        return boot_alloc(size, PAGE);
    if (size < threshold)
        return real_valloc(size);
    return alloc_large(size, PAGE, 0);
}

void *pvalloc(size_t size)
{
    if (!ready())
        return boot_alloc((size + PAGE - 1) & ~(PAGE - 1), PAGE);
    size_t rounded = size ? (size + PAGE - 1) & ~(PAGE - 1) : PAGE;
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    if (rounded < threshold)
        return real_pvalloc(size);
    return alloc_large(rounded, PAGE, 0);
}

size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (!ready() || in_boot(p))
        return in_boot(p) ? boot_size(p) : 0;
    struct chunk *c;
    return usable(p, &c);
}

/* ---- fork, and the counters at exit ---- */

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork(void) { pthread_mutex_unlock(&lock); }
static void after_fork_child(void) { pthread_mutex_init(&lock, NULL); }

__attribute__((constructor)) static void vrcache_start(void)
{
    ready();
    pthread_atfork(before_fork, after_fork, after_fork_child);
}

__attribute__((destructor)) static void vrcache_end(void)
{
    if (!print_stats || !(st.allocs || st.fallbacks))
        return;     /* only processes that used the cache: not every helper */
    char line[512];
    int n = snprintf(line, sizeof line,
                     "vrcache: pid=%d strategy=%s threshold=%zu allocs=%lu from_cache=%lu "
                     "fresh=%lu purged_reuses=%lu vrange_calls=%lu vrange_errors=%lu "
                     "madvise=%lu unmaps=%lu remaps=%lu cached_peak=%lu fallback=%lu\n",
                     (int)getpid(), strategy_names[current_strategy()], threshold, st.allocs,
                     st.from_cache, st.fresh, st.purged_reuses, st.vrange_calls,
                     st.vrange_errors, st.madvise_calls, st.unmaps, st.remaps, st.cached_peak,
                     st.fallbacks);
    if (n > 0)
        say(line);
}
