/* vrnative.h - interface of vrnative.c.  cffi parses this file as its cdef,
 * so it holds plain declarations only: no #include, no include guard. */

#define VR_TRAP_NOTIFY 0
#define VR_TRAP_PTRACE 1
#define VR_VMA_COVERING_OR_NEXT 16
#define VR_HELLO_MODE 0x76720001  /* region.h: the in-process library's hello */
#define VR_BARRIER_MODE 0x76720002
#define VR_ESCAPE_ARG 0x7672657363617065
#define VR_STUB_DONE_NR 45054   /* 0xaffe: the stub's end-of-batch call (linux/stub.py) */

struct vr_spawn_result {
    int pid;          /* the program's pid (0 if fork failed) */
    int listener;     /* user-notification fd, -1 in ptrace mode or on failure */
    int sync_wakeup;  /* SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP was accepted */
    int seized;       /* PTRACE_SEIZE succeeded and the child was let go */
    int seize_errno;
    int fail_stage;   /* 0, or where the child failed: 1 nnp 2 filter 3 send 4 exec 5 cgroup */
    int fail_errno;
};

/* struct procmap_query (Linux 6.11+), under our own name. */
struct vr_vma {
    uint64_t size;
    uint64_t query_flags;
    uint64_t query_addr;
    uint64_t vma_start;
    uint64_t vma_end;
    uint64_t vma_flags;      /* 1 read, 2 write, 4 exec, 8 shared */
    uint64_t vma_page_size;
    uint64_t vma_offset;
    uint64_t inode;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint32_t vma_name_size;
    uint32_t build_id_size;
    uint64_t vma_name_addr;
    uint64_t build_id_addr;
};

struct vr_siginfo {
    int signo;
    int code;
    int pid;
};

int vr_spawn(const char *file, char *const argv[], int action, int nr,
             const char *cgroup_procs, long ptrace_options, struct vr_spawn_result *out);
int vr_notif_recv(int fd, struct seccomp_notif *n);
int vr_notif_send(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags);
int vr_notif_id_valid(int fd, uint64_t id);
int vr_write_i32(int pid, uint64_t addr, int32_t value);
int vr_vma_query(int maps_fd, uint64_t addr, struct vr_vma *q, char *name,
                 uint32_t name_size);
int vr_signalfd(const int *signals, int count);
int vr_signalfd_read(int fd, struct vr_siginfo *out);
int vr_kcmp_vm(int pid1, int pid2);
int vr_tgkill(int tgid, int tid, int sig);
int vr_pidfd_getfd(int pid, int fd);
int vr_uffd_enable_sigbus(int ufd);
int vr_uffd_register(int ufd, uint64_t start, uint64_t len);
int vr_uffd_unregister(int ufd, uint64_t start, uint64_t len);
int vr_uffd_zeropage(int ufd, const uint64_t *runs, int n);
int vr_discardable_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out,
                        int max_runs);
int vr_shared_pages(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out, int max);

/* fastpath.c: the native receive/answer loop for calls that need no decision. */
#define VR_FAST_TIMEOUT 0   /* the timeout passed */
#define VR_FAST_READY 1     /* another fd is readable (or a lock call needs Python) */
#define VR_FAST_SLOW 2      /* `slow` holds a received call for Python to answer */
#define VR_FAST_HUP 3       /* no process holds the filter any more */
#define VR_FAST_FULL 4      /* the log is full */
#define VR_OP_VOLATILE 1
#define VR_OP_NONVOLATILE 2
#define VR_OP_LOCK 3        /* the task called mlock/mlock2/mlockall/mmap(MAP_LOCKED) */

struct vr_fast_profile {
    int32_t nr;
    int32_t mode_volatile;
    int32_t mode_nonvolatile;
    int32_t returns_purged;   /* v7: returns 0/1, not bytes */
    int32_t purged_arg;       /* -1 if none */
    int32_t flags_arg;
    int32_t behavior_arg;
    uint32_t allowed_flags;
    uint64_t user_end;
};

struct vr_fast_op {
    uint64_t start;
    uint64_t end;
    int32_t tid;
    int32_t slot;      /* -1: the task was not known */
    int32_t kind;      /* VR_OP_* */
    int32_t partial;
    uint64_t ns;       /* CLOCK_MONOTONIC when it was answered */
};

/* A call's arguments as vr_fast_decode() read them. */
struct vr_fast_call {
    uint64_t start;
    uint64_t len;          /* rounded down to whole pages */
    uint64_t purged_ptr;   /* 0 if the profile has none or the caller passed NULL */
    int32_t is_volatile;   /* 1 VOLATILE, 0 NONVOLATILE */
    int32_t partial;
};

int vr_fast_decode(const struct vr_fast_profile *p, const uint64_t args[6],
                   struct vr_fast_call *out);
int vr_fast_init(void);
int vr_fast_slot(int slot, int maps_fd, int lock_check);
void vr_fast_bind(int tid, int slot);
void vr_fast_set_lock_check(int slot, int on);
int vr_fast_set_purged(int slot, const uint64_t *runs, int n);
int vr_fast_add_purged(int slot, const uint64_t *runs, int n);
void vr_fast_set_repin_all(int slot, int on);
int vr_fast_cut_purged(int slot, uint64_t start, uint64_t end);
int vr_fast_get_purged(int slot, uint64_t *out, int max_runs);
void vr_fast_set_budget(uint64_t high_pages);
int vr_fast_set_rss(int slot, int statm_fd, int64_t rss_pages);
int vr_fast_serve(const struct vr_fast_profile *p, int listener, const int *fds, int nfds,
                  int timeout_ms, short *revents, struct vr_fast_op *ops, int max_ops,
                  int *nops, struct seccomp_notif *slow);
/* follow.c: the ptrace stops the native loop follows without Python. */
#define VR_FAST_FOLLOWED 5  /* stops were followed or reaped: see vr_follow_take */
#define VR_EV_FORK 1        /* fork/vfork/clone of a routine task (tid: the parent) */
#define VR_EV_EXEC 2        /* exec by a routine task: a new space */
#define VR_EV_EXIT 3        /* a routine task is gone (value: its wait status) */
#define VR_EV_STARTED 4     /* the first stop of a child followed here was resumed */
#define VR_FOLLOW_MAX_EVS 64
#define VR_FOLLOW_MAX_HELD 16
#define VR_FOLLOW_PENDING 1
#define VR_FOLLOW_EXPECTED 2
#define VR_FOLLOW_HELD 4
#define VR_FOLLOW_GROUP 8

struct vr_follow_ev {
    int32_t kind;      /* VR_EV_* */
    int32_t tid;       /* the task stopped (fork: the parent) */
    int32_t child;     /* fork: the new task */
    int32_t value;     /* fork: PTRACE_EVENT_*; exit: the wait status */
    int32_t shares;    /* fork: 1 if the child shares the parent's mm (kcmp) */
    int32_t claimed;   /* fork: the child's first stop was seen and resumed here */
    int32_t nops;      /* calls logged before it in the same batch */
    char comm[16];     /* exec: the new program's name */
};

int vr_follow_start(int sigfd, int nr, struct vr_follow_ev *ev_buf, int32_t *stop_buf);
void vr_follow_stop(void);
int vr_follow_slot(int slot, int on);
int vr_follow_get_slot(int slot);
void vr_follow_volatile(int slot);
void vr_follow_tid(int tid, int off, int on);
void vr_follow_take(int *n_evs, int *n_stops);
struct pollfd;
int vr_follow_ready(const struct pollfd *pfd, const int *fds, short *revents, int nfds,
                    int nops);
int vr_fast_slot_of(int tid);
/* region.c and fastpath.c: the in-process library's region (region.h). */
#define VR_REGION_CELLS 4096   /* region.h: entries its log holds */
#define VR_OP_WORDS 4        /* an entry of vr_fast_take: start, end, position, flags */
#define VR_OPF_VOLATILE 1
#define VR_OPF_PARTIAL 2
#define VR_OPF_CANCELLED 4
#define VR_OPF_PAIR 8        /* vr_fast_take_pairs: a VOLATILE and its re-pin; the tid from bit 8 */
int vr_fast_attach(int slot, int memfd, const struct vr_fast_profile *p);
int vr_fast_has_region(int slot);
void vr_fast_detach(int slot);
int vr_fast_take(int slot, uint64_t *out, int max);
int vr_fast_take_pairs(int slot, uint64_t *out, int max);
int vr_fast_consume(int slot, uint32_t pos, int answer);
void vr_fast_claim(int slot);
int vr_fast_region_counts(int slot, uint64_t out[3]);
void vr_fast_rearm(int slot);
int vr_resident_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out,
                     int max_runs);
int vr_missing_runs(int pagemap_fd, uint64_t start, uint64_t end, uint64_t *out,
                    int max_runs);
