/*
 * hpthammer-agent: the HPTHammer guest agent (ppc64le, static, runs from the initramfs /init).
 *
 * Speaks the line protocol of PROTOCOL.md on its stdin/stdout (the guest's console, hvc0):
 * every line it writes starts with "@hpth " and ends with " *XX" (XOR checksum), and it
 * ignores input lines that do not start with "@hpth ", so kernel messages on the same console
 * do not disturb either side.
 *
 * It runs a memory load with integrity checks (threads that verify and rewrite a pattern, page
 * by page) and a resize driver that writes orders to /sys/kernel/debug/powerpc/hpt_order,
 * reading the kernel's "HPT resize to shift N complete (P ms / C ms)" from /dev/kmsg.
 *
 * Build: powerpc64le-linux-gnu-gcc -static -O2 -pthread -o hpthammer-agent hpthammer-agent.c
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define AGENT_VERSION "1"
#define PREFIX "@hpth "
#define HPT_ORDER_PATH "/sys/kernel/debug/powerpc/hpt_order"
#define MAX_THREADS 64
#define MAX_REPORTS_PER_THREAD 32 /* corrupt lines per thread and load; all are counted */
#define QUEUE_LEN 64

/* ---------------------------------------------------------------- output ------------------ */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes one protocol line ("@hpth " + text + " *XX\n") with a single write(2). */
static void out(const char *fmt, ...)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, PREFIX);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - n - 8, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if (n > (int)sizeof buf - 8)
        n = sizeof buf - 8;
    unsigned char x = 0;
    for (int i = 0; i < n; i++)
        x ^= (unsigned char)buf[i];
    n += snprintf(buf + n, 8, " *%02x\n", x);
    pthread_mutex_lock(&out_lock);
    for (int off = 0; off < n;) {
        ssize_t w = write(1, buf + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += w;
    }
    pthread_mutex_unlock(&out_lock);
}

/* ---------------------------------------------------------------- helpers ----------------- */

static int64_t now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *errname(int e)
{
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT";
    default: return "E?";
    }
}

/* Current HPT order from debugfs, or -errno. */
static int read_order(void)
{
    int fd = open(HPT_ORDER_PATH, O_RDONLY);
    if (fd < 0)
        return -errno;
    char b[32];
    ssize_t n = read(fd, b, sizeof b - 1);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -EIO;
    b[n] = 0;
    return atoi(b);
}

static const char *mmu_kind(void)
{
    static char kind[16] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "MMU", 3) == 0) {
                char *v = strchr(line, ':');
                if (v && sscanf(v + 1, "%15s", kind) == 1)
                    for (char *p = kind; *p; p++)
                        *p = tolower((unsigned char)*p);
                break;
            }
        }
        fclose(f);
    }
    return kind;
}

/* ---------------------------------------------------------------- memory load ------------- */

struct loader {
    pthread_t th;
    int id;
    size_t bytes;
    uint64_t *buf;
    atomic_int stop;
    atomic_uint_fast64_t pages;      /* pages verified */
    atomic_uint_fast64_t mismatches; /* pages that did not hold the expected pattern */
    atomic_uint_fast64_t passes;
    int reports;
    int churn; /* give every 8th page back (MADV_DONTNEED) before rewriting it */
};

static struct loader *loaders[MAX_THREADS];
static int nloaders;
static size_t load_mib;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t page_size;
/* Totals of loads that were stopped, so stats stay cumulative. */
static uint64_t old_pages, old_mismatches, old_passes;

static inline uint64_t pattern(int id, uint64_t pass, uint64_t word)
{
    /* Differs per thread, pass and word: a page seen at the wrong place or a stale copy
     * of an older pass are both detected. */
    return (word * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)id << 56) ^ (pass << 32) ^ 0x5A5A0000ULL;
}

static void *load_main(void *arg)
{
    struct loader *l = arg;
    size_t wpp = page_size / sizeof(uint64_t);
    size_t npages = l->bytes / page_size;
    for (uint64_t pass = 0; !atomic_load(&l->stop); pass++) {
        for (size_t p = 0; p < npages && !atomic_load(&l->stop); p++) {
            uint64_t *pg = l->buf + p * wpp;
            uint64_t w0 = (uint64_t)p * wpp;
            if (pass > 0) {
                size_t bad = wpp;
                for (size_t i = 0; i < wpp; i++)
                    if (pg[i] != pattern(l->id, pass - 1, w0 + i)) {
                        bad = i;
                        break;
                    }
                if (bad != wpp) {
                    atomic_fetch_add(&l->mismatches, 1);
                    if (l->reports++ < MAX_REPORTS_PER_THREAD)
                        out("corrupt %d 0x%zx 0x%016llx 0x%016llx", l->id,
                            (p * wpp + bad) * sizeof(uint64_t),
                            (unsigned long long)pattern(l->id, pass - 1, w0 + bad),
                            (unsigned long long)pg[bad]);
                }
                atomic_fetch_add(&l->pages, 1);
            }
            /* Churn: every 8th page (a different one each pass) goes back to the kernel and
             * is faulted in again by the write below, so HPTEs keep being inserted. */
            if (l->churn && (p & 7) == (pass & 7))
                madvise(pg, page_size, MADV_DONTNEED);
            for (size_t i = 0; i < wpp; i++)
                pg[i] = pattern(l->id, pass, w0 + i);
        }
        atomic_fetch_add(&l->passes, 1);
    }
    return NULL;
}

static void load_stop_locked(void)
{
    for (int i = 0; i < nloaders; i++)
        atomic_store(&loaders[i]->stop, 1);
    for (int i = 0; i < nloaders; i++) {
        struct loader *l = loaders[i];
        pthread_join(l->th, NULL);
        old_pages += atomic_load(&l->pages);
        old_mismatches += atomic_load(&l->mismatches);
        old_passes += atomic_load(&l->passes);
        munmap(l->buf, l->bytes);
        free(l);
        loaders[i] = NULL;
    }
    nloaders = 0;
    load_mib = 0;
}

static void load_totals(uint64_t *pages, uint64_t *mism, uint64_t *passes, int *threads, size_t *mib)
{
    pthread_mutex_lock(&load_lock);
    *pages = old_pages;
    *mism = old_mismatches;
    *passes = old_passes;
    for (int i = 0; i < nloaders; i++) {
        *pages += atomic_load(&loaders[i]->pages);
        *mism += atomic_load(&loaders[i]->mismatches);
        *passes += atomic_load(&loaders[i]->passes);
    }
    *threads = nloaders;
    *mib = load_mib;
    pthread_mutex_unlock(&load_lock);
}

static void cmd_load(int threads, long mib, int churn)
{
    if (threads < 0 || threads > MAX_THREADS || mib < 0 || (threads > 0 && mib == 0)) {
        out("err load bad-arguments threads=0..%d MiB>0", MAX_THREADS);
        return;
    }
    pthread_mutex_lock(&load_lock);
    load_stop_locked();
    struct sysinfo si;
    sysinfo(&si);
    uint64_t avail = ((uint64_t)si.freeram + si.bufferram) * si.mem_unit >> 20;
    if ((uint64_t)threads * mib > avail * 9 / 10) {
        pthread_mutex_unlock(&load_lock);
        out("err load not-enough-memory want=%lld free=%llu", (long long)threads * mib,
            (unsigned long long)avail);
        return;
    }
    for (int i = 0; i < threads; i++) {
        struct loader *l = calloc(1, sizeof *l);
        l->id = i;
        l->bytes = (size_t)mib << 20;
        l->churn = churn;
        l->buf = mmap(NULL, l->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (l->buf == MAP_FAILED) {
            int e = errno;
            free(l);
            load_stop_locked();
            pthread_mutex_unlock(&load_lock);
            out("err load mmap %s", errname(e));
            return;
        }
        loaders[nloaders++] = l;
        if (pthread_create(&l->th, NULL, load_main, l) != 0) {
            nloaders--;
            munmap(l->buf, l->bytes);
            free(l);
            load_stop_locked();
            pthread_mutex_unlock(&load_lock);
            out("err load pthread_create");
            return;
        }
    }
    load_mib = mib;
    pthread_mutex_unlock(&load_lock);
    out("loading %d %ld %d", threads, mib, churn);
}

/* ---------------------------------------------------------------- resize driver ----------- */

static int kmsg_fd = -1;
static atomic_uint_fast64_t resizes, resize_ok, resize_fail;

/* Reads every pending /dev/kmsg record; when want >= 0, returns 1 and sets *p, *c if one of
 * them is "HPT resize to shift <want> complete (P ms / C ms)". */
static int kmsg_scan(int want, long *p, long *c)
{
    int found = 0;
    char rec[2048], key[64];
    snprintf(key, sizeof key, "HPT resize to shift %d complete (", want);
    if (kmsg_fd < 0)
        return 0;
    for (;;) {
        ssize_t n = read(kmsg_fd, rec, sizeof rec - 1);
        if (n < 0) {
            if (errno == EINTR || errno == EPIPE) /* EPIPE: records were overwritten */
                continue;
            break; /* EAGAIN: nothing more */
        }
        if (n == 0)
            break;
        rec[n] = 0;
        char *m = want >= 0 ? strstr(rec, key) : NULL;
        if (m && sscanf(m + strlen(key), "%ld ms / %ld ms", p, c) == 2)
            found = 1;
    }
    return found;
}

static pthread_mutex_t resize_lock = PTHREAD_MUTEX_INITIALIZER;

/* One resize: writes the order, reports "resized", returns the errno (0 on success). */
static int do_resize(int order)
{
    pthread_mutex_lock(&resize_lock);
    long p = -1, c = -1;
    kmsg_scan(-1, &p, &c); /* drop older records */
    char b[32];
    int len = snprintf(b, sizeof b, "%d\n", order);
    int err = 0;
    double t0 = mono_ms();
    int fd = open(HPT_ORDER_PATH, O_WRONLY);
    if (fd < 0)
        err = errno;
    else {
        if (write(fd, b, len) < 0)
            err = errno;
        close(fd);
    }
    double t1 = mono_ms();
    if (!kmsg_scan(order, &p, &c))
        p = c = -1;
    atomic_fetch_add(&resizes, 1);
    atomic_fetch_add(err ? &resize_fail : &resize_ok, 1);
    pthread_mutex_unlock(&resize_lock);
    out("resized %d %d %ld %ld %ld %s", order, err, (long)(t1 - t0 + 0.5), p, c, errname(err));
    return err;
}

enum job_kind { JOB_RESIZE, JOB_POLICY };
enum policy { POL_RANDOM, POL_GROW, POL_SHRINK, POL_SAME };
static const char *policy_names[] = { "random-walk", "grow", "shrink", "same" };

struct job {
    enum job_kind kind;
    int order;
    enum policy pol;
    int min, max;
    long count, pause_ms;
};

static struct job queue[QUEUE_LEN];
static int q_head, q_len;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static atomic_int policy_stop, policy_running, worker_busy;

static int enqueue(struct job j)
{
    pthread_mutex_lock(&q_lock);
    if (q_len == QUEUE_LEN) {
        pthread_mutex_unlock(&q_lock);
        return -1;
    }
    queue[(q_head + q_len++) % QUEUE_LEN] = j;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
    return 0;
}

static void run_policy(struct job *j)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    long done = 0, ok = 0, failed = 0;
    int cur = read_order();
    if (cur < j->min || cur > j->max)
        cur = j->pol == POL_SHRINK ? j->max + 1 : j->min - 1;
    out("policy-started %s %d %d %ld", policy_names[j->pol], j->min, j->max, j->count);
    atomic_store(&policy_running, 1);
    while ((j->count == 0 || done < j->count) && !atomic_load(&policy_stop)) {
        int next = cur;
        switch (j->pol) {
        case POL_SAME:
            next = cur >= j->min && cur <= j->max ? cur : j->min;
            break;
        case POL_GROW:
            next = cur + 1 > j->max ? j->min : cur + 1;
            break;
        case POL_SHRINK:
            next = cur - 1 < j->min ? j->max : cur - 1;
            break;
        case POL_RANDOM:
            if (j->min == j->max)
                next = j->min;
            else if (cur < j->min || cur > j->max)
                next = j->min + rand_r(&seed) % (j->max - j->min + 1);
            else
                do
                    next = cur + (rand_r(&seed) % 2 ? 1 : -1);
                while (next < j->min || next > j->max);
            break;
        }
        int err = do_resize(next);
        done++;
        if (err)
            failed++;
        else
            ok++;
        int now = read_order();
        cur = now > 0 ? now : (err ? cur : next);
        if (j->pause_ms > 0)
            usleep(j->pause_ms * 1000);
    }
    atomic_store(&policy_running, 0);
    out("policy-done %ld %ld %ld", done, ok, failed);
}

static void *resize_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (q_len == 0)
            pthread_cond_wait(&q_cond, &q_lock);
        struct job j = queue[q_head];
        q_head = (q_head + 1) % QUEUE_LEN;
        q_len--;
        atomic_store(&worker_busy, 1);
        atomic_store(&policy_stop, 0);
        pthread_mutex_unlock(&q_lock);
        if (j.kind == JOB_RESIZE)
            do_resize(j.order);
        else
            run_policy(&j);
        atomic_store(&worker_busy, 0);
    }
    return NULL;
}

/* ---------------------------------------------------------------- heartbeat, stats -------- */

static atomic_uint_fast64_t hb_seq;
static int64_t boot_ms_at_start;

static void *heartbeat_main(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        next.tv_sec += 1;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
        out("hb %llu %lld", (unsigned long long)atomic_fetch_add(&hb_seq, 1) + 1,
            (long long)now_ms(CLOCK_BOOTTIME));
    }
    return NULL;
}

static void cmd_stats(void)
{
    uint64_t pages, mism, passes;
    int threads;
    size_t mib;
    load_totals(&pages, &mism, &passes, &threads, &mib);
    struct sysinfo si;
    sysinfo(&si);
    pthread_mutex_lock(&q_lock);
    int queued = q_len;
    pthread_mutex_unlock(&q_lock);
    int order = read_order();
    out("counters uptime_ms=%lld agent_ms=%lld hb=%llu threads=%d mib=%zu pages=%llu mismatches=%llu "
        "passes=%llu resizes=%llu ok=%llu failed=%llu order=%d policy=%d queued=%d free_mib=%llu",
        (long long)now_ms(CLOCK_BOOTTIME), (long long)(now_ms(CLOCK_BOOTTIME) - boot_ms_at_start),
        (unsigned long long)atomic_load(&hb_seq), threads, mib, (unsigned long long)pages,
        (unsigned long long)mism, (unsigned long long)passes,
        (unsigned long long)atomic_load(&resizes), (unsigned long long)atomic_load(&resize_ok),
        (unsigned long long)atomic_load(&resize_fail), order < 0 ? -1 : order,
        atomic_load(&policy_running), queued,
        (unsigned long long)((uint64_t)si.freeram * si.mem_unit >> 20));
}

static void cmd_crash(void)
{
    out("crashing");
    sync();
    int fd = open("/proc/sysrq-trigger", O_WRONLY);
    if (fd < 0 || write(fd, "c", 1) < 0) {
        out("err crash %s", errname(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    out("err crash still-alive");
}

/* ---------------------------------------------------------------- commands ---------------- */

static void cmd_ready(void)
{
    struct utsname u;
    uname(&u);
    struct sysinfo si;
    sysinfo(&si);
    int order = read_order();
    out("ready %s %s %d %llu %ld %s", u.release, mmu_kind(), order < 0 ? -1 : order,
        (unsigned long long)((uint64_t)si.totalram * si.mem_unit >> 20),
        sysconf(_SC_NPROCESSORS_ONLN), AGENT_VERSION);
}

static int parse_int(const char *s, long *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    *v = strtol(s, &end, 10);
    return errno || *end ? -1 : 0;
}

static void handle(char *line)
{
    /* Trim, check the prefix, verify an optional trailing " *XX" checksum. */
    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = 0;
    if (strncmp(line, PREFIX, strlen(PREFIX)) != 0)
        return;
    if (n >= 4 && line[n - 4] == ' ' && line[n - 3] == '*' && isxdigit((unsigned char)line[n - 2]) &&
        isxdigit((unsigned char)line[n - 1])) {
        unsigned char x = 0;
        for (size_t i = 0; i < n - 4; i++)
            x ^= (unsigned char)line[i];
        if (strtoul(line + n - 2, NULL, 16) != x) {
            out("err checksum");
            return;
        }
        line[n - 4] = 0;
    }
    char *argv[8];
    int argc = 0;
    char *save = NULL;
    for (char *t = strtok_r(line + strlen(PREFIX), " \t", &save); t && argc < 8;
         t = strtok_r(NULL, " \t", &save))
        argv[argc++] = t;
    if (argc == 0)
        return;
    const char *cmd = argv[0];
    long a, b, c, d, e;
    if (!strcmp(cmd, "info")) {
        cmd_ready();
    } else if (!strcmp(cmd, "ping")) {
        out("pong %s", argc > 1 ? argv[1] : "-");
    } else if (!strcmp(cmd, "load")) {
        c = 1;
        if ((argc != 3 && argc != 4) || parse_int(argv[1], &a) || parse_int(argv[2], &b) ||
            (argc == 4 && (parse_int(argv[3], &c) || c < 0 || c > 1)))
            out("err load usage: load <threads> <MiB per thread> [churn 0|1]");
        else
            cmd_load((int)a, b, (int)c);
    } else if (!strcmp(cmd, "resize")) {
        if (argc != 2 || parse_int(argv[1], &a))
            out("err resize usage: resize <order>");
        else if (enqueue((struct job){ .kind = JOB_RESIZE, .order = (int)a }))
            out("err resize queue-full");
    } else if (!strcmp(cmd, "policy")) {
        if (argc == 2 && !strcmp(argv[1], "stop")) {
            atomic_store(&policy_stop, 1);
            out("policy-stopping");
            return;
        }
        int pol = -1;
        for (int i = 0; argc > 1 && i < 4; i++)
            if (!strcmp(argv[1], policy_names[i]))
                pol = i;
        e = 0;
        if ((argc != 5 && argc != 6) || pol < 0 || parse_int(argv[2], &b) ||
            parse_int(argv[3], &c) || parse_int(argv[4], &d) || (argc == 6 && parse_int(argv[5], &e)) ||
            b > c || b < 0 || c > 64 || d < 0 || e < 0) {
            out("err policy usage: policy <random-walk|grow|shrink|same> <min> <max> <count> [pause ms] | policy stop");
            return;
        }
        if (enqueue((struct job){ .kind = JOB_POLICY, .pol = pol, .min = (int)b, .max = (int)c,
                                  .count = d, .pause_ms = e }))
            out("err policy queue-full");
    } else if (!strcmp(cmd, "stats")) {
        cmd_stats();
    } else if (!strcmp(cmd, "order")) {
        int o = read_order();
        out("hpt %d %s", o < 0 ? -1 : o, o < 0 ? errname(-o) : "OK");
    } else if (!strcmp(cmd, "loglevel")) {
        /* Console log level (like dmesg -n): 5 keeps warnings, oopses and panics on the
         * console and drops the info lines (two per resize) that can split agent lines. */
        if (argc != 2 || parse_int(argv[1], &a) || a < 1 || a > 8)
            out("err loglevel usage: loglevel <1..8>");
        else
            out("loglevel %ld %s", a, errname(klogctl(8, NULL, (int)a) < 0 ? errno : 0));
    } else if (!strcmp(cmd, "crash")) {
        cmd_crash();
    } else if (!strcmp(cmd, "quit")) {
        atomic_store(&policy_stop, 1);
        pthread_mutex_lock(&load_lock);
        load_stop_locked();
        pthread_mutex_unlock(&load_lock);
        cmd_stats();
        out("bye");
        exit(0);
    } else {
        out("err unknown %s", cmd);
    }
}

/* Console input: no echo (an echoed command would look like an agent line), no signals from
 * stray control characters, no EOF character; lines still assembled by the tty. */
static void setup_tty(void)
{
    struct termios t;
    if (tcgetattr(0, &t) != 0)
        return;
    t.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL | ISIG | IEXTEN);
    t.c_lflag |= ICANON;
    t.c_iflag |= ICRNL;
    t.c_iflag &= ~(IXON | IXOFF);
    t.c_cc[VEOF] = _POSIX_VDISABLE;
    tcsetattr(0, TCSANOW, &t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    page_size = sysconf(_SC_PAGESIZE);
    boot_ms_at_start = now_ms(CLOCK_BOOTTIME);
    int tty = isatty(0);
    if (tty)
        setup_tty();
    kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (kmsg_fd >= 0)
        lseek(kmsg_fd, 0, SEEK_END);

    cmd_ready();

    pthread_t th;
    pthread_create(&th, NULL, heartbeat_main, NULL);
    pthread_create(&th, NULL, resize_main, NULL);

    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (!tty)
                break;
            sleep(1);
            continue;
        }
        if (r == 0) {
            if (!tty)
                break; /* a pipe (tests): end of input ends the agent */
            sleep(1);  /* a tty hangup: keep going, heartbeats still tell the harness we live */
            continue;
        }
        len += r;
        buf[len] = 0;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', buf + len - start)) != NULL) {
            *nl = 0;
            handle(start);
            start = nl + 1;
        }
        len -= start - buf;
        memmove(buf, start, len);
        if (len == sizeof buf - 1) /* an overlong line: drop it */
            len = 0;
    }
    /* stdin closed (not a tty): finish queued resizes, then leave. */
    for (;;) {
        pthread_mutex_lock(&q_lock);
        int busy = q_len;
        pthread_mutex_unlock(&q_lock);
        if (!busy && !atomic_load(&worker_busy))
            break;
        usleep(100000);
    }
    out("bye");
    return 0;
}
