/* Diagnostics without stdio or allocation (Go's print.go and throw): a
 * fixed buffer formatter, heap-misuse reports and fatal errors, all written
 * with write(2). See malloc.c for the overview. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void ga_buf_str(ga_buf_t *b, const char *s)
{
    while (*s && b->len + 1 < b->cap)
        b->p[b->len++] = *s++;
    b->p[b->len] = '\0';
}

void ga_buf_uint(ga_buf_t *b, uint64_t v)
{
    char tmp[24];
    int i = 23;
    tmp[i] = '\0';
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ga_buf_str(b, tmp + i);
}

void ga_buf_hex(ga_buf_t *b, uint64_t v)
{
    char tmp[24];
    int i = 23;
    tmp[i] = '\0';
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    tmp[--i] = 'x';
    tmp[--i] = '0';
    ga_buf_str(b, tmp + i);
}

/* Bytes of the UTF-8 sequence at s (1..4), or 0 if it is not a valid one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, a surrogate, or past U+10FFFF */
    return n;
}

const char *ga_buf_json(ga_buf_t *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u != '\0' && b->len + 7 < b->cap) {
        size_t n = *u < 0x80 ? 1 : utf8_len(u);
        if (*u == '"' || *u == '\\') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = (char)*u;
        } else if (*u < 0x20 || *u == 0x7f) {
            ga_buf_str(b, "\\u00");
            b->p[b->len++] = "0123456789abcdef"[*u >> 4];
            b->p[b->len++] = "0123456789abcdef"[*u & 15];
        } else if (n == 0) {
            ga_buf_str(b, "\\ufffd"); /* a byte of a path that is not UTF-8 */
            n = 1;
        } else {
            memcpy(b->p + b->len, u, n);
            b->len += n;
        }
        u += n ? n : 1;
        b->p[b->len] = '\0';
    }
    return (const char *)u;
}

int ga_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        long w = ga_sys_write(fd, p, n);
        if (w <= 0)
            return w < 0 ? (int)-w : EIO; /* EIO: the file took nothing more */
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool in_arena(uintptr_t p)
{
    uintptr_t ai = p >> GA_ARENA_SHIFT;
    return ai < GA_ARENA_L2_ENTRIES &&
           atomic_load_explicit(&ga_arena_map[ai], memory_order_acquire) != NULL;
}

/* Where p is, given its page-map entry s. A page no span ever held maps to
 * NULL; the inner pages of a free run keep whatever span they last held
 * (a free, dead or since reused struct), hence the bounds check. */
static void describe_span(ga_buf_t *b, uintptr_t p, const ga_span_t *s)
{
    if (s == NULL) {
        ga_buf_str(b, in_arena(p)             ? " (inside a goalloc arena, in no span)"
                      : ga_is_zero_object(p) ? " (a zero-size object, no access)"
                                             : " (outside every goalloc arena)");
        return;
    }
    uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (st == GA_SPAN_FREE || st == GA_SPAN_DEAD || st == GA_SPAN_CLAIMED || p < s->base ||
        p - s->base >= (uintptr_t)s->npages << GA_PAGE_SHIFT) {
        ga_buf_str(b, " (in a free page run)");
    } else if (st == GA_SPAN_PCACHED) {
        ga_buf_str(b, " (a freed large object, kept in a page cache)");
    } else if (s->spc == GA_TINY_SPC) {
        ga_buf_str(b, " (tiny block)");
    } else if (s->spc == 0) {
        ga_buf_str(b, " (large object at ");
        ga_buf_hex(b, s->base);
        ga_buf_str(b, ", ");
        ga_buf_uint(b, (uint64_t)s->npages << GA_PAGE_SHIFT);
        ga_buf_str(b, " B)");
    } else {
        ga_buf_str(b, " (size class ");
        ga_buf_uint(b, s->spc);
        ga_buf_str(b, ", ");
        ga_buf_uint(b, s->elemsize);
        ga_buf_str(b, " B)");
    }
}

_Atomic uint64_t ga_misuse_count;

void ga_misuse(const char *fn, const char *what, uintptr_t p, const ga_span_t *s)
{
    char line[256];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "goalloc: ");
    ga_buf_str(&b, fn);
    ga_buf_str(&b, "(): ");
    ga_buf_str(&b, what);
    ga_buf_str(&b, " ");
    ga_buf_hex(&b, p);
    describe_span(&b, p, s);
    ga_buf_str(&b, "\n");
    ga_write_all(2, line, b.len);
#if defined(GA_TESTING)
    ga_test_misuse_seen(line, b.len);
#endif
    /* the bad call's stack (goalloc's frames left out), indented: the
     * report's own line stays the one "goalloc: " line */
    uintptr_t stk[GA_PROF_MAX_STACK];
    unsigned depth = ga_prof_stack(stk, GA_PROF_MAX_STACK);
    if (depth > 0) {
        static const char head[] = "  the call's stack (goalloc symbolize names it):\n";
        ga_write_all(2, head, sizeof head - 1);
        ga_print_stack(2, stk, depth);
    }
    atomic_fetch_add(&ga_misuse_count, 1);
    if (!ga_opts.on_error_report)
        abort();
}

void ga_throw_at(const char *msg, const char *fn)
{
    char line[256];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "goalloc: fatal error: ");
    ga_buf_str(&b, msg);
    if (fn != NULL) {
        ga_buf_str(&b, " in ");
        ga_buf_str(&b, fn);
        ga_buf_str(&b, "()");
    }
    ga_buf_str(&b, "\n");
    ga_write_all(2, line, b.len);
    abort();
}

void ga_throw(const char *msg) { ga_throw_at(msg, NULL); }

void ga_warn(const char *msg1, const char *msg2, const char *msg3)
{
    char line[256];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "goalloc: ");
    ga_buf_str(&b, msg1);
    ga_buf_str(&b, msg2 ? msg2 : "");
    ga_buf_str(&b, msg3 ? msg3 : "");
    ga_buf_str(&b, "\n");
    ga_write_all(2, line, b.len);
}

/* Formats a validator failure "what (a, b)" into msg; returns 1. */
int ga_fail(char *msg, size_t len, const char *what, uint64_t a, uint64_t c)
{
    if (msg != NULL && len > 0) {
        ga_buf_t b = {msg, 0, len};
        msg[0] = '\0';
        ga_buf_str(&b, what);
        ga_buf_str(&b, " (");
        ga_buf_hex(&b, a);
        ga_buf_str(&b, ", ");
        ga_buf_uint(&b, c);
        ga_buf_str(&b, ")");
    }
    return 1;
}

/* ---- options in effect (GOALLOC=verbose=1) ---------------------------------- */

size_t ga_options_string(char *buf, size_t len)
{
    char item[1200];
    size_t total = 0;
    if (buf != NULL && len > 0)
        buf[0] = '\0';
    for (unsigned i = 0; i < ga_option_count(); i++) {
        ga_buf_t b = {item, 0, sizeof item};
        item[0] = '\0';
        ga_buf_str(&b, i ? "," : "");
        ga_buf_str(&b, ga_option_key(i));
        ga_buf_str(&b, "=");
        ga_option_format(i, &b);
        if (buf != NULL && total + b.len < len) {
            memcpy(buf + total, item, b.len + 1);
        }
        total += b.len;
    }
    return total;
}

void ga_print_options(int fd)
{
    char line[4096 + GA_PATH_MAX];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "goalloc " GA_VERSION ": options ");
    size_t n = ga_options_string(line + b.len, sizeof line - b.len - 1);
    b.len = n < sizeof line - b.len - 1 ? b.len + n : b.len;
    line[b.len] = '\0';
    if (ga_opts.stats_path != NULL) {
        ga_buf_str(&b, "; GOALLOC_STATS=");
        ga_buf_str(&b, ga_opts.stats_path);
    }
    ga_buf_str(&b, "\n");
    ga_write_all(fd, line, b.len);
}
