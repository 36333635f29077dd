/* Start-up, options and fork (Go's runtime1.go parsedebugvars and the
 * malloc init in malloc.go). Start-up runs on the first allocation or from
 * the library constructor, whichever comes first; options come from the
 * GOALLOC environment variable, comma-separated key=value pairs as in Go's
 * GODEBUG, read without allocating. See malloc.c for the overview. */
#include <string.h>

#include "internal.h"

ga_options_t ga_opts = {.tiny = true, .summary = false};
_Atomic int ga_initialized;
size_t ga_tiny_limit; /* 0 until start-up: no request takes the tiny path */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- options ---------------------------------------------------------------- */

typedef struct option {
    const char *key;
    bool *value;
    const char *doc; /* one line, printed in messages and the README */
} option_t;

static const option_t options[] = {
    {"tiny", &ga_opts.tiny, "pack 1..15-byte requests into 16-byte blocks (Go's tiny allocator)"},
    {"summary", &ga_opts.summary, "print a census of the heap on stderr at exit"},
};

static void option_message(const char *what, const char *item, size_t n, const char *tail)
{
    char line[200];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "GOALLOC: ");
    ga_buf_str(&b, what);
    ga_buf_str(&b, " '");
    size_t i = 0;
    while (i < n && b.len + 2 < b.cap)
        line[b.len++] = item[i++];
    line[b.len] = '\0';
    ga_buf_str(&b, "'");
    ga_warn(line, tail, NULL);
}

/* Parses one "key=value" item of length n; reports and ignores bad ones. */
static void parse_item(const char *item, size_t n)
{
    const char *eq = memchr(item, '=', n);
    if (eq == NULL) {
        option_message("option without a value", item, n, " (ignored; expected key=value)");
        return;
    }
    size_t klen = (size_t)(eq - item), vlen = n - klen - 1;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (strlen(options[i].key) != klen || memcmp(options[i].key, item, klen) != 0)
            continue;
        if (vlen == 1 && (eq[1] == '0' || eq[1] == '1'))
            *options[i].value = eq[1] == '1';
        else
            option_message("bad value in", item, n, " (ignored; expected 0 or 1)");
        return;
    }
    option_message("unknown option", item, klen, " (ignored)");
}

void ga_parse_options(const char *s)
{
    while (s != NULL && *s != '\0') {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n > 0)
            parse_item(s, n);
        s = end ? end + 1 : NULL;
    }
}

/* The value of option key: 0 or 1, or -1 when there is no such option. */
int ga_option_value(const char *key)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strcmp(options[i].key, key) == 0)
            return *options[i].value;
    return -1;
}

/* ---- fork ------------------------------------------------------------------- */

/* Lock order, everywhere: shared mcache, mcache list, mcentral[1..] and
 * the tiny mcentral, page heap, span bitmaps, persistent chunks. */
static void fork_prepare(void)
{
    ga_mcache_lock_all();
    ga_mcentral_lock_all();
    ga_mheap_lock();
    ga_span_bits_lock();
    ga_persistent_lock();
}

static void fork_parent(void)
{
    ga_persistent_unlock();
    ga_span_bits_unlock();
    ga_mheap_unlock();
    ga_mcentral_unlock_all();
    ga_mcache_unlock_all();
}

static void fork_child(void)
{
    ga_persistent_fork_child();
    ga_span_bits_fork_child();
    ga_mheap_fork_child();
    ga_mcentral_fork_child();
    ga_mcache_fork_child();
}

/* ---- start-up ----------------------------------------------------------------- */

void ga_init_slow(void)
{
    pthread_mutex_lock(&init_lock);
    if (atomic_load_explicit(&ga_initialized, memory_order_relaxed)) {
        pthread_mutex_unlock(&init_lock);
        return;
    }
    ga_parse_options(ga_sys_getenv("GOALLOC"));
    ga_classes_load(&ga_sizeclasses_go1_12);
    ga_mheap_init();
    ga_mcentral_init();
    ga_mcache_init();
    ga_tiny_limit = ga_opts.tiny ? GA_TINY_SIZE : 0;
    atomic_store_explicit(&ga_initialized, 1, memory_order_release);
    pthread_mutex_unlock(&init_lock);
    /* After start-up: pthread_atfork may allocate, which now works. */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void ga_constructor(void)
{
    ga_ensure_init();
}

__attribute__((destructor)) static void ga_destructor(void)
{
    if (ga_opts.summary && atomic_load(&ga_initialized))
        ga_print_summary(2);
}

/* Locks taken by ga_check_heap and ga_print_summary: the fork order. */
void ga_lock_all(void) { fork_prepare(); }
void ga_unlock_all(void) { fork_parent(); }
