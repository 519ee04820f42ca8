/* Mayuri's file-access tracer, preloaded (LD_PRELOAD) into every process of a job.
 *
 * It interposes the C library's open, stat, readlink, opendir and exec
 * families and appends one record per new fact to its own file in
 * $MAYURI_CLOSURE_DIR, in the format of mayuri/closure/site/sitecustomize.py:
 *
 *     KIND \t MONOTONIC_NS \t VALUE \0
 *
 * KIND is `R` (a file opened for reading; VALUE is "dev,ino,size,mtime_ns,ctime_ns"
 * followed by the absolute path as the job spelled it, so the identity the job
 * read can be compared at the end), `r` (a read of a file that did not exist),
 * `w` (a file opened for writing, created or renamed into place), `l` (a folder listed;
 * `L` in a Python process, where the import system lists folders too), `p` (a path
 * looked at: stat, readlink; only the symbolic links met resolving it count)
 * `e` (the program this process runs) and `S` (a statically linked program about to
 * be run: the tracer cannot see into it).  Only `R` and `e` are recorded outside
 * the project (the collector keeps `[cache] roots` files and lists the rest as
 * untracked reads).  Paths are absolute but not
 * resolved: the collector walks them to find the links the job went through.
 *
 * The hot path stays cheap: paths are filtered by prefix before anything else
 * (system folders and the excluded ones are dropped), each fact is written
 * once per process (a hash set), and one `write` on an O_APPEND descriptor
 * keeps a record whole however many processes append.  It never changes what
 * a call returns or its errno.  In a Python process the audit hook reports
 * listings (it can tell the import system's apart), so opendir is not
 * recorded there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define RECORD_MAX (PATH_MAX + 128)

static int enabled;
static int in_python;
static char closure_dir[PATH_MAX];
static char root[PATH_MAX];
static size_t root_len;
/* Folders never reported: first the excluded ones (the store, the closure folder,
 * Mayuri itself), then, outside the project only, the interpreter's (MAYURI_TRACER_SKIP). */
static char skip_buf[16384];
static const char *skips[128];
static size_t skip_lens[128];
static int n_skips, n_excluded;
static const char *const system_prefixes[] = {
    "/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/bin/", "/sbin/", "/etc/",
    "/proc/", "/sys/", "/dev/", "/run/", "/var/", "/snap/", "/nix/", NULL,
};

static pid_t out_pid;
static int out_fd = -1;
static volatile char lock;
static uint64_t *seen;
static size_t seen_cap, seen_len;
static char cwd[PATH_MAX];
static size_t cwd_len;
static int cwd_valid;

/* Environment variables a child must keep even when the job passes execve a fresh env. */
static const char *const kept_names[] = {
    "LD_PRELOAD", "MAYURI_CLOSURE_DIR", "MAYURI_PROJECT_ROOT", "MAYURI_CLOSURE_EXCLUDE",
    "MAYURI_TRACER_SKIP", "MAYURI_TRACE_RUNS", "MAYURI_RUN_ID", NULL,
};
static char *kept_entries[8];

#define REAL(ret, name, args)                                                                  \
    static ret(*real_##name) args;                                                             \
    if (!real_##name) real_##name = (ret(*) args)dlsym(RTLD_NEXT, #name)

/* Whether this thread holds the lock: a signal handler that opens a file while its thread
 * is inside the tracer must not spin forever; its call goes unrecorded instead. */
static __thread int holding;

static int spin_lock(void) {
    if (holding) return 0;
    while (__atomic_test_and_set(&lock, __ATOMIC_ACQUIRE)) {
    }
    holding = 1;
    return 1;
}
static void spin_unlock(void) {
    holding = 0;
    __atomic_clear(&lock, __ATOMIC_RELEASE);
}

static uint64_t fnv(char kind, const char *s) {
    uint64_t h = 1469598103934665603ULL ^ (unsigned char)kind;
    h *= 1099511628211ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/* Whether (kind, path) is new to this process; remembers it. Caller holds the lock. */
static int first_time(uint64_t h) {
    if (seen_len * 2 >= seen_cap) {
        size_t cap = seen_cap ? seen_cap * 2 : 4096;
        uint64_t *grown = calloc(cap, sizeof *grown);
        if (!grown) return 1;
        for (size_t i = 0; i < seen_cap; i++) {
            if (!seen[i]) continue;
            size_t j = seen[i] & (cap - 1);
            while (grown[j]) j = (j + 1) & (cap - 1);
            grown[j] = seen[i];
        }
        free(seen);
        seen = grown;
        seen_cap = cap;
    }
    size_t j = h & (seen_cap - 1);
    while (seen[j]) {
        if (seen[j] == h) return 0;
        j = (j + 1) & (seen_cap - 1);
    }
    seen[j] = h;
    seen_len++;
    return 1;
}

/* Whether (kind, path) was recorded already, without remembering it: a file opened again
 * (every epoch, say) costs a hash and a lookup, not an fstat. */
static int recorded(char kind, const char *path) {
    uint64_t h = fnv(kind, path);
    if (!spin_lock()) return 1;
    int found = 0;
    if (seen_cap) {
        for (size_t j = h & (seen_cap - 1); seen[j] && !found; j = (j + 1) & (seen_cap - 1)) found = seen[j] == h;
    }
    spin_unlock();
    return found;
}

static int starts_with(const char *s, const char *prefix, size_t n) { return strncmp(s, prefix, n) == 0; }

#define IN_PROJECT 1
#define ELSEWHERE 2

/* Where an absolute path lies: IN_PROJECT, ELSEWHERE (not a system folder: a data
 * folder, maybe a `[cache] roots` one, decided by the collector), or 0 (not recorded). */
static int under(const char *path, const char *folder, size_t len) {
    return strncmp(path, folder, len) == 0 && (path[len] == '/' || path[len] == 0);
}

/* The run's params.json (in the store, which is never reported otherwise): a program that reads
 * it sees every param, so the collector must hear of it (mayuri/params_used.py). */
static char params_path[PATH_MAX];

/* The store's runs folder (both spellings, MAYURI_TRACE_RUNS): what a job does in another run's
 * folder (an upstream's results) is reported, so that a downstream job counts only the upstream
 * files it used (mayuri/upstream_reads.py); its own run folder stays unreported. */
static char runs_buf[2 * PATH_MAX];
static const char *runs_dirs[2];
static size_t runs_lens[2];
static int n_runs;
static char own_id[128];

static int in_other_run(const char *path) {
    for (int i = 0; i < n_runs; i++) {
        if (!under(path, runs_dirs[i], runs_lens[i]) || path[runs_lens[i]] != '/') continue;
        const char *id = path + runs_lens[i] + 1;
        size_t n = strlen(own_id);
        return !(n && strncmp(id, own_id, n) == 0 && (id[n] == '/' || id[n] == 0));
    }
    return 0;
}

static int wanted(const char *path) {
    if (params_path[0] && strcmp(path, params_path) == 0) return ELSEWHERE;
    if (n_runs && in_other_run(path)) return IN_PROJECT;
    for (int i = 0; i < n_excluded; i++)
        if (under(path, skips[i], skip_lens[i])) return 0;
    if (under(path, root, root_len)) return IN_PROJECT;
    for (int i = n_excluded; i < n_skips; i++)
        if (under(path, skips[i], skip_lens[i])) return 0;
    for (const char *const *p = system_prefixes; *p; p++)
        if (starts_with(path, *p, strlen(*p))) return 0;
    return ELSEWHERE;
}

static ssize_t raw_readlink(const char *path, char *buf, size_t size) {
    REAL(ssize_t, readlink, (const char *, char *, size_t));
    return real_readlink(path, buf, size);
}

static int absolute_of(int dirfd, const char *path, char *out);

/* The absolute spelling of `path` (relative to `dirfd`) in `out` and where it lies (see
 * `wanted`); 0 when unknown or unwanted. errno is left as the interposed call set it. */
static int absolute(int dirfd, const char *path, char *out) {
    if (!enabled || !path || !*path) return 0;
    int saved = errno;
    int where = absolute_of(dirfd, path, out);
    errno = saved;
    return where;
}

static int absolute_of(int dirfd, const char *path, char *out) {
    size_t n = strlen(path);
    if (path[0] == '/') {
        if (n >= PATH_MAX) return 0;
        memcpy(out, path, n + 1);
    } else {
        char base[PATH_MAX];
        size_t len;
        if (dirfd == AT_FDCWD) {
            if (!spin_lock()) return 0;
            if (!cwd_valid && getcwd(cwd, sizeof cwd)) {
                cwd_len = strlen(cwd);
                cwd_valid = 1;
            }
            len = cwd_valid ? cwd_len : 0;
            memcpy(base, cwd, len);
            spin_unlock();
            if (!len) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t got = raw_readlink(link, base, sizeof base - 1);
            if (got <= 0) return 0;
            len = (size_t)got;
        }
        if (len + 1 + n >= PATH_MAX) return 0;
        memcpy(out, base, len);
        out[len] = '/';
        memcpy(out + len + 1, path, n + 1);
    }
    return wanted(out);
}

/* The first process of a job makes the folder (and its parent, the run's closure folder). */
static void make_closure_dir(void) {
    char folder[PATH_MAX];
    strcpy(folder, closure_dir);
    for (char *slash = strchr(folder + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        mkdir(folder, 0755);
        *slash = '/';
    }
    mkdir(folder, 0755);
}

static int open_record_file(void) {
    REAL(int, open, (const char *, int, ...));
    char name[PATH_MAX + 64];
    unsigned int salt = (unsigned int)(uintptr_t)&name ^ (unsigned int)time(NULL);
    snprintf(name, sizeof name, "%s/%d-%08x-c.rec", closure_dir, (int)getpid(), salt);
    int fd = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != ENOENT) return fd;
    make_closure_dir();
    return real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* Append one record (kind, extra + path) unless this process already did. */
static void emit(char kind, const char *extra, const char *path) {
    int saved = errno;
    uint64_t h = fnv(kind, path);
    char record[RECORD_MAX + 64];
    if (!spin_lock()) return;
    int fresh = first_time(h);
    if (fresh && !out_pid) {
        /* Opened on first use; a forked child (see after_fork_child) opens its own file,
         * as the inherited descriptor's number may be reused by the job. */
        out_fd = open_record_file();
        out_pid = getpid();
    }
    int fd = out_fd;
    spin_unlock();
    if (fresh && fd >= 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int n = snprintf(record, sizeof record, "%c\t%lld\t%s%s", kind,
                         (long long)now.tv_sec * 1000000000LL + now.tv_nsec, extra, path);
        if (n > 0 && (size_t)n < sizeof record) {
            ssize_t ignored = write(fd, record, (size_t)n + 1); /* the NUL ends the record */
            (void)ignored;
        }
    }
    errno = saved;
}

static void emit_read(int fd, const char *path) {
    struct stat st;
    char identity[128];
    if (recorded('R', path)) return;
    if (fstat(fd, &st) != 0) {
        identity[0] = 0;
    } else if (S_ISDIR(st.st_mode)) {
        return; /* a folder opened (to list it, or for its descriptor) is not read */
    } else if (!S_ISREG(st.st_mode)) {
        identity[0] = 0;
    } else {
        snprintf(identity, sizeof identity, "%llu,%llu,%lld,%lld,%lld", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino, (long long)st.st_size,
                 (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                 (long long)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec);
    }
    emit('R', identity, path);
}

/* Record an open(2)-style call that returned `fd`; `existed` says whether the file was there before. */
static void after_open(int dirfd, const char *path, int flags, int fd, int existed) {
    char abs[PATH_MAX];
    int saved = errno;
    int access = flags & O_ACCMODE;
    int writes = access == O_WRONLY || (flags & O_TRUNC) || (access == O_RDWR && !existed);
    int where = absolute(dirfd, path, abs);
    if (!where) return;
    if (fd < 0) {
        /* The job saw that the file was not there: creating it later is a change. */
        if (saved == ENOENT && !(flags & O_CREAT) && where == IN_PROJECT) emit('r', "", abs);
        errno = saved;
        return;
    }
    if (!writes)
        emit_read(fd, abs);
    else if (where == IN_PROJECT)
        emit('w', "", abs);
    errno = saved;
}

/* Whether a file exists before an O_CREAT open (only then does the answer matter). */
static int existed_before(int dirfd, const char *path, int flags) {
    if (!enabled || !(flags & O_CREAT) || (flags & O_ACCMODE) != O_RDWR || (flags & O_TRUNC)) return 1;
    REAL(int, fstatat, (int, const char *, struct stat *, int));
    struct stat st;
    int saved = errno;
    int found = real_fstatat(dirfd, path, &st, 0) == 0;
    errno = saved;
    return found;
}

#define MODE_ARG                                                                                 \
    mode_t mode = 0;                                                                             \
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {                                 \
        va_list ap;                                                                              \
        va_start(ap, flags);                                                                     \
        mode = va_arg(ap, mode_t);                                                               \
        va_end(ap);                                                                              \
    }

int open(const char *path, int flags, ...) {
    MODE_ARG
    REAL(int, open, (const char *, int, ...));
    int existed = existed_before(AT_FDCWD, path, flags);
    int fd = real_open(path, flags, mode);
    after_open(AT_FDCWD, path, flags, fd, existed);
    return fd;
}

int open64(const char *path, int flags, ...) {
    MODE_ARG
    REAL(int, open64, (const char *, int, ...));
    int existed = existed_before(AT_FDCWD, path, flags);
    int fd = real_open64(path, flags, mode);
    after_open(AT_FDCWD, path, flags, fd, existed);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...) {
    MODE_ARG
    REAL(int, openat, (int, const char *, int, ...));
    int existed = existed_before(dirfd, path, flags);
    int fd = real_openat(dirfd, path, flags, mode);
    after_open(dirfd, path, flags, fd, existed);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...) {
    MODE_ARG
    REAL(int, openat64, (int, const char *, int, ...));
    int existed = existed_before(dirfd, path, flags);
    int fd = real_openat64(dirfd, path, flags, mode);
    after_open(dirfd, path, flags, fd, existed);
    return fd;
}

/* The fortified entry points (_FORTIFY_SOURCE) that compiled programs call instead. */
int __open_2(const char *path, int flags) {
    REAL(int, __open_2, (const char *, int));
    int fd = real___open_2(path, flags);
    after_open(AT_FDCWD, path, flags, fd, 1);
    return fd;
}

int __open64_2(const char *path, int flags) {
    REAL(int, __open64_2, (const char *, int));
    int fd = real___open64_2(path, flags);
    after_open(AT_FDCWD, path, flags, fd, 1);
    return fd;
}

int __openat_2(int dirfd, const char *path, int flags) {
    REAL(int, __openat_2, (int, const char *, int));
    int fd = real___openat_2(dirfd, path, flags);
    after_open(dirfd, path, flags, fd, 1);
    return fd;
}

int __openat64_2(int dirfd, const char *path, int flags) {
    REAL(int, __openat64_2, (int, const char *, int));
    int fd = real___openat64_2(dirfd, path, flags);
    after_open(dirfd, path, flags, fd, 1);
    return fd;
}

int creat(const char *path, mode_t mode) {
    REAL(int, creat, (const char *, mode_t));
    int fd = real_creat(path, mode);
    after_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, fd, 0);
    return fd;
}

int creat64(const char *path, mode_t mode) {
    REAL(int, creat64, (const char *, mode_t));
    int fd = real_creat64(path, mode);
    after_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, fd, 0);
    return fd;
}

static int fopen_flags(const char *mode) {
    int plus = strchr(mode, '+') != NULL;
    switch (mode[0]) {
    case 'r': return plus ? O_RDWR : O_RDONLY;
    case 'w': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    default: return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
    }
}

static void after_fopen(const char *path, const char *mode, FILE *f) {
    int flags = fopen_flags(mode);
    if (!f) {
        after_open(AT_FDCWD, path, flags, -1, 1);
        return;
    }
    after_open(AT_FDCWD, path, flags, fileno(f), 1);
}

FILE *fopen(const char *path, const char *mode) {
    REAL(FILE *, fopen, (const char *, const char *));
    FILE *f = real_fopen(path, mode);
    after_fopen(path, mode, f);
    return f;
}

FILE *fopen64(const char *path, const char *mode) {
    REAL(FILE *, fopen64, (const char *, const char *));
    FILE *f = real_fopen64(path, mode);
    after_fopen(path, mode, f);
    return f;
}

FILE *freopen(const char *path, const char *mode, FILE *stream) {
    REAL(FILE *, freopen, (const char *, const char *, FILE *));
    FILE *f = real_freopen(path, mode, stream);
    if (path) after_fopen(path, mode, f);
    return f;
}

FILE *freopen64(const char *path, const char *mode, FILE *stream) {
    REAL(FILE *, freopen64, (const char *, const char *, FILE *));
    FILE *f = real_freopen64(path, mode, stream);
    if (path) after_fopen(path, mode, f);
    return f;
}

/* A path looked at: only the symbolic links met on the way count. */
static void looked_at(int dirfd, const char *path) {
    char abs[PATH_MAX];
    if (absolute(dirfd, path, abs) == IN_PROJECT) emit('p', "", abs);
}

int stat(const char *path, struct stat *buf) {
    REAL(int, stat, (const char *, struct stat *));
    int r = real_stat(path, buf);
    looked_at(AT_FDCWD, path);
    return r;
}

int stat64(const char *path, struct stat64 *buf) {
    REAL(int, stat64, (const char *, struct stat64 *));
    int r = real_stat64(path, buf);
    looked_at(AT_FDCWD, path);
    return r;
}

int lstat(const char *path, struct stat *buf) {
    REAL(int, lstat, (const char *, struct stat *));
    int r = real_lstat(path, buf);
    looked_at(AT_FDCWD, path);
    return r;
}

int lstat64(const char *path, struct stat64 *buf) {
    REAL(int, lstat64, (const char *, struct stat64 *));
    int r = real_lstat64(path, buf);
    looked_at(AT_FDCWD, path);
    return r;
}

int fstatat(int dirfd, const char *path, struct stat *buf, int flags) {
    REAL(int, fstatat, (int, const char *, struct stat *, int));
    int r = real_fstatat(dirfd, path, buf, flags);
    looked_at(dirfd, path); /* an empty path (AT_EMPTY_PATH) is skipped */
    return r;
}

int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags) {
    REAL(int, fstatat64, (int, const char *, struct stat64 *, int));
    int r = real_fstatat64(dirfd, path, buf, flags);
    looked_at(dirfd, path); /* an empty path (AT_EMPTY_PATH) is skipped */
    return r;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
    REAL(int, statx, (int, const char *, int, unsigned int, struct statx *));
    int r = real_statx(dirfd, path, flags, mask, buf);
    looked_at(dirfd, path); /* an empty path (AT_EMPTY_PATH) is skipped */
    return r;
}

int access(const char *path, int mode) {
    REAL(int, access, (const char *, int));
    int r = real_access(path, mode);
    looked_at(AT_FDCWD, path);
    return r;
}

int faccessat(int dirfd, const char *path, int mode, int flags) {
    REAL(int, faccessat, (int, const char *, int, int));
    int r = real_faccessat(dirfd, path, mode, flags);
    looked_at(dirfd, path);
    return r;
}

ssize_t readlink(const char *path, char *buf, size_t size) {
    ssize_t r = raw_readlink(path, buf, size);
    looked_at(AT_FDCWD, path);
    return r;
}

ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size) {
    REAL(ssize_t, readlinkat, (int, const char *, char *, size_t));
    ssize_t r = real_readlinkat(dirfd, path, buf, size);
    looked_at(dirfd, path);
    return r;
}

DIR *opendir(const char *path) {
    REAL(DIR *, opendir, (const char *));
    DIR *d = real_opendir(path);
    char abs[PATH_MAX];
    /* In a Python process the import system lists folders too: `L` lets the collector
     * tell those apart (the audit hook reports the job's own listings as `l`). */
    if (d && absolute(AT_FDCWD, path, abs) == IN_PROJECT) emit(in_python ? 'L' : 'l', "", abs);
    return d;
}

/* A file renamed into place (an atomic save) is written under its new name. */
static void renamed(int dirfd, const char *to) {
    char abs[PATH_MAX];
    if (absolute(dirfd, to, abs) == IN_PROJECT) emit('w', "", abs);
}

int rename(const char *from, const char *to) {
    REAL(int, rename, (const char *, const char *));
    int r = real_rename(from, to);
    if (r == 0) renamed(AT_FDCWD, to);
    return r;
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
    REAL(int, renameat, (int, const char *, int, const char *));
    int r = real_renameat(fromfd, from, tofd, to);
    if (r == 0) renamed(tofd, to);
    return r;
}

int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags) {
    REAL(int, renameat2, (int, const char *, int, const char *, unsigned int));
    int r = real_renameat2(fromfd, from, tofd, to, flags);
    if (r == 0) renamed(tofd, to);
    return r;
}

int chdir(const char *path) {
    REAL(int, chdir, (const char *));
    int r = real_chdir(path);
    int locked = spin_lock();
    cwd_valid = 0;
    if (locked) spin_unlock();
    return r;
}

int fchdir(int fd) {
    REAL(int, fchdir, (int));
    int r = real_fchdir(fd);
    int locked = spin_lock();
    cwd_valid = 0;
    if (locked) spin_unlock();
    return r;
}

/* Whether `path` is an ELF program without a program interpreter: a static one, which no
 * preload reaches. Only system calls: this may run in a vfork child. */
static int is_static_elf(const char *path) {
    REAL(int, open, (const char *, int, ...));
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    Elf64_Ehdr eh;
    int result = 0;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && (eh.e_type == ET_EXEC || eh.e_type == ET_DYN)) {
        result = 1;
        for (int i = 0; i < eh.e_phnum && i < 256; i++) {
            Elf64_Phdr ph;
            off_t at = (off_t)eh.e_phoff + (off_t)i * eh.e_phentsize;
            if (pread(fd, &ph, sizeof ph, at) != (ssize_t)sizeof ph || ph.p_type == PT_INTERP) {
                result = 0;
                break;
            }
        }
    }
    close(fd);
    return result;
}

/* Record (`S`) a program the tracer will not see, in a file of its own: no shared state. */
static void note_static(const char *path) {
    REAL(int, open, (const char *, int, ...));
    char record[RECORD_MAX + 64], where[PATH_MAX], name[PATH_MAX + 64];
    if (path[0] == '/') {
        snprintf(where, sizeof where, "%s", path);
    } else if (getcwd(where, sizeof where)) {
        size_t len = strlen(where);
        snprintf(where + len, sizeof where - len, "/%s", path);
    } else {
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    snprintf(name, sizeof name, "%s/%d-static-%lld.rec", closure_dir, (int)getpid(), ns);
    int n = snprintf(record, sizeof record, "S\t%lld\t%s", ns, where);
    int fd = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        make_closure_dir();
        fd = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    if (fd < 0) return;
    if (n > 0 && (size_t)n < sizeof record) {
        ssize_t ignored = write(fd, record, (size_t)n + 1);
        (void)ignored;
    }
    close(fd);
}

/* `envp`, or `fixed` filled with envp plus the tracer's variables it lacks (a job that passes a
 * fresh environment keeps the tracer). Stack only: this may run in a vfork child. */
static char *const *with_kept(char *const envp[], char **fixed, size_t room) {
    if (!enabled || !envp) return envp;
    int missing[8] = {0};
    int any = 0;
    for (int k = 0; kept_names[k]; k++) {
        if (!kept_entries[k]) continue;
        size_t len = strlen(kept_names[k]);
        int found = 0;
        for (char *const *e = envp; *e && !found; e++)
            found = strncmp(*e, kept_names[k], len) == 0 && (*e)[len] == '=';
        missing[k] = !found;
        any |= !found;
    }
    if (!any) return envp;
    size_t n = 0;
    for (char *const *e = envp; *e; e++) {
        if (n + 8 >= room) return envp; /* too many to copy: left as the job made it */
        fixed[n++] = *e;
    }
    for (int k = 0; kept_names[k]; k++)
        if (missing[k]) fixed[n++] = kept_entries[k];
    fixed[n] = NULL;
    return fixed;
}

/* Note `file` if it is a static program, looked up on PATH like execvp when it has no slash. */
static void check_program(const char *file) {
    REAL(int, access, (const char *, int));
    if (!enabled || !file || !*file) return;
    int saved = errno;
    if (strchr(file, '/')) {
        if (is_static_elf(file)) note_static(file);
    } else {
        const char *path = getenv("PATH");
        char candidate[PATH_MAX];
        for (const char *p = path ? path : "/bin:/usr/bin"; *p;) {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len && len + strlen(file) + 2 < sizeof candidate) {
                memcpy(candidate, p, len);
                candidate[len] = '/';
                strcpy(candidate + len + 1, file);
                if (real_access(candidate, X_OK) == 0) {
                    if (is_static_elf(candidate)) note_static(candidate);
                    break;
                }
            }
            p = end ? end + 1 : p + len;
        }
    }
    errno = saved;
}

int execve(const char *path, char *const argv[], char *const envp[]) {
    REAL(int, execve, (const char *, char *const[], char *const[]));
    char *fixed[4096];
    check_program(path);
    return real_execve(path, argv, with_kept(envp, fixed, 4096));
}

/* The C library's own exec and spawn functions call the system call directly: each is wrapped. */
int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

int execvpe(const char *file, char *const argv[], char *const envp[]) {
    REAL(int, execvpe, (const char *, char *const[], char *const[]));
    char *fixed[4096];
    check_program(file);
    return real_execvpe(file, argv, with_kept(envp, fixed, 4096));
}

int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    REAL(int, posix_spawn, (pid_t *, const char *, const posix_spawn_file_actions_t *,
                            const posix_spawnattr_t *, char *const[], char *const[]));
    char *fixed[4096];
    check_program(path);
    return real_posix_spawn(pid, path, actions, attr, argv, with_kept(envp, fixed, 4096));
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    REAL(int, posix_spawnp, (pid_t *, const char *, const posix_spawn_file_actions_t *,
                             const posix_spawnattr_t *, char *const[], char *const[]));
    char *fixed[4096];
    check_program(file);
    return real_posix_spawnp(pid, file, actions, attr, argv, with_kept(envp, fixed, 4096));
}

static void after_fork_child(void) {
    holding = 0;
    __atomic_clear(&lock, __ATOMIC_RELAXED);
    if (out_fd >= 0) close(out_fd); /* the parent's: still this number in the child, at this point */
    out_pid = 0;
    out_fd = -1;
}

__attribute__((constructor)) static void start(void) {
    const char *dir = getenv("MAYURI_CLOSURE_DIR");
    const char *proj = getenv("MAYURI_PROJECT_ROOT");
    if (!dir || !proj || !*dir || !*proj || strlen(dir) >= PATH_MAX - 64 || strlen(proj) >= PATH_MAX) return;
    strcpy(closure_dir, dir);
    strcpy(root, proj);
    root_len = strlen(root);
    while (root_len > 1 && root[root_len - 1] == '/') root[--root_len] = 0;
    const char *run_dir = getenv("MAYURI_RUN_DIR");
    if (run_dir && *run_dir == '/' && strlen(run_dir) < PATH_MAX - 16) {
        strcpy(params_path, run_dir);
        size_t n = strlen(params_path);
        while (n > 1 && params_path[n - 1] == '/') params_path[--n] = 0;
        strcat(params_path, "/params.json");
    }
    const char *runs = getenv("MAYURI_TRACE_RUNS");
    const char *id = getenv("MAYURI_RUN_ID");
    if (id && strlen(id) < sizeof own_id) strcpy(own_id, id);
    if (runs && strlen(runs) < sizeof runs_buf) {
        strcpy(runs_buf, runs);
        for (char *p = runs_buf; *p && n_runs < 2;) {
            char *end = strchr(p, ':');
            if (end) *end = 0;
            size_t len = strlen(p);
            while (len > 1 && p[len - 1] == '/') p[--len] = 0;
            if (len) {
                runs_dirs[n_runs] = p;
                runs_lens[n_runs++] = len;
            }
            if (!end) break;
            p = end + 1;
        }
    }
    const char *excluded = getenv("MAYURI_CLOSURE_EXCLUDE");
    size_t used = 0;
    const char *lists[] = {closure_dir, excluded, getenv("MAYURI_TRACER_SKIP"), NULL};
    for (int l = 0; l < 3; l++) {
        const char *list = lists[l];
        if (l == 2) n_excluded = n_skips;
        if (!list) continue;
        const char *p = list;
        while (*p && n_skips < 127) {
            const char *end = l == 0 ? p + strlen(p) : strchr(p, ':');
            if (!end) end = p + strlen(p);
            size_t len = (size_t)(end - p);
            while (len > 1 && p[len - 1] == '/') len--;
            if (len && used + len + 1 < sizeof skip_buf) {
                memcpy(skip_buf + used, p, len);
                skip_buf[used + len] = 0;
                skips[n_skips] = skip_buf + used;
                skip_lens[n_skips++] = len;
                used += len + 1;
            }
            p = *end ? end + 1 : end;
        }
    }
    for (int k = 0; kept_names[k]; k++) {
        const char *value = getenv(kept_names[k]);
        if (!value) continue;
        size_t len = strlen(kept_names[k]) + strlen(value) + 2;
        kept_entries[k] = malloc(len);
        if (kept_entries[k]) snprintf(kept_entries[k], len, "%s=%s", kept_names[k], value);
    }
    in_python = dlsym(RTLD_DEFAULT, "Py_IsInitialized") != NULL;
    pthread_atfork(NULL, NULL, after_fork_child);
    enabled = 1;
    char exe[PATH_MAX];
    ssize_t n = raw_readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        if (wanted(exe)) emit('e', "", exe);
    }
}
