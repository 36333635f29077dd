/* Size-class tables read from a file (GOALLOC=sizeclasses=/path): the
 * generator's TSV format (tools/mksizeclasses.py --tsv, and Go's reference
 * tables in shared/data) — '#' comment lines, then a header line of
 * tab-separated column names, then one line per class. Read with
 * open/read/close into a static buffer and parsed by hand: no malloc, no
 * stdio, nothing trusted. Only bytes_per_obj and npages are used; class
 * numbers must count up from 0 (the dummy row, optional) or 1, and the
 * columns that restate derived figures (bytes_per_span, objects,
 * tail_waste, max_waste_pct, magic32), when present, must agree with what
 * msize.c derives. Every refusal names the line. No Go counterpart (Go's
 * tables are compiled in); see malloc.c for the overview. */
#include <pthread.h>
#include <string.h>

#include "inline.h"

#define FILE_CAP (64u << 10) /* bytes read at most; a full table is about 6 KiB */
#define MAX_COLUMNS 8
#define MAX_DIGITS 10        /* every number fits in 32 bits */

static ga_lock_t file_lock = GA_LOCK_INIT; /* the buffer below */
static char file_buf[FILE_CAP + 1];

enum { COL_CLASS, COL_SIZE, COL_NPAGES, COL_SPAN, COL_OBJECTS, COL_TAIL, COL_WASTE, COL_MAGIC };
static const char *const column_names[] = {"class", "bytes_per_obj", "npages", "bytes_per_span",
                                           "objects", "tail_waste", "max_waste_pct", "magic32"};

typedef struct parser {
    char *why;
    size_t len;
    unsigned line;                 /* 1-based number of the line being parsed */
    int ncols;                     /* columns of the header, 0 before it */
    int col[MAX_COLUMNS];          /* column i of the file is COL_* col[i] */
    uint64_t given[GA_MAX_SIZE_CLASSES][MAX_COLUMNS]; /* by class and COL_*; waste in 1/100 % */
    uint8_t has[MAX_COLUMNS];      /* COL_* present */
    unsigned lines[GA_MAX_SIZE_CLASSES]; /* line of each class */
} parser_t;

static parser_t parser; /* under file_lock: about 9 KiB */

static int fail(parser_t *ps, const char *what, const char *more, uint64_t v, bool has_v)
{
    if (ps->why != NULL && ps->len > 0) {
        ga_buf_t b = {ps->why, 0, ps->len};
        ps->why[0] = '\0';
        if (ps->line) {
            ga_buf_str(&b, "line ");
            ga_buf_uint(&b, ps->line);
            ga_buf_str(&b, ": ");
        }
        ga_buf_str(&b, what);
        if (more != NULL)
            ga_buf_str(&b, more);
        if (has_v)
            ga_buf_uint(&b, v);
    }
    return -1;
}

/* A decimal number of up to MAX_DIGITS digits; hundredths: an optional
 * fraction of up to two digits, the result in 1/100. */
static int parse_number(parser_t *ps, const char *f, size_t n, bool hundredths, uint64_t *out,
                        int colid)
{
    uint64_t v = 0;
    size_t i = 0, digits = 0, frac = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '9'; i++, digits++)
        v = v * 10 + (uint64_t)(f[i] - '0');
    if (digits > MAX_DIGITS)
        return fail(ps, "number too large in column ", column_names[colid], 0, false);
    if (hundredths && i < n && f[i] == '.') {
        for (i++; i < n && f[i] >= '0' && f[i] <= '9' && frac < 2; i++, frac++)
            v = v * 10 + (uint64_t)(f[i] - '0');
    }
    if (hundredths)
        for (; frac < 2; frac++)
            v *= 10;
    if (digits == 0 || i != n)
        return fail(ps, "not a number in column ", column_names[colid], 0, false);
    if (!hundredths && v > UINT32_MAX)
        return fail(ps, "number too large in column ", column_names[colid], 0, false);
    *out = v;
    return 0;
}

static int parse_header(parser_t *ps, const char *s, size_t n)
{
    ps->ncols = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\t')
            continue;
        const char *f = s + start;
        size_t fl = i - start;
        start = i + 1;
        if (ps->ncols == MAX_COLUMNS)
            return fail(ps, "header: more than 8 columns", NULL, 0, false);
        int id = -1;
        for (int k = 0; k < MAX_COLUMNS; k++)
            if (strlen(column_names[k]) == fl && memcmp(column_names[k], f, fl) == 0)
                id = k;
        if (id < 0)
            return fail(ps,
                        "header: unknown column (expected class, bytes_per_obj, npages and "
                        "optionally bytes_per_span, objects, tail_waste, max_waste_pct, magic32)",
                        NULL, 0, false);
        if (ps->has[id])
            return fail(ps, "header: column given twice: ", column_names[id], 0, false);
        ps->has[id] = 1;
        ps->col[ps->ncols++] = id;
    }
    if (!ps->has[COL_CLASS] || !ps->has[COL_SIZE] || !ps->has[COL_NPAGES])
        return fail(ps, "header: the columns class, bytes_per_obj and npages are required", NULL,
                    0, false);
    return 0;
}

/* One class line into t. */
static int parse_row(parser_t *ps, ga_sizeclass_table_t *t, const char *s, size_t n)
{
    uint64_t v[MAX_COLUMNS] = {0};
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\t')
            continue;
        if (k == ps->ncols)
            return fail(ps, "more fields than the header's columns: ", NULL, (uint64_t)ps->ncols,
                        true);
        int id = ps->col[k++];
        if (parse_number(ps, s + start, i - start, id == COL_WASTE, &v[id], id) != 0)
            return -1;
        start = i + 1;
    }
    if (k != ps->ncols)
        return fail(ps, "fewer fields than the header's columns: ", NULL, (uint64_t)ps->ncols,
                    true);
    uint64_t cls = v[COL_CLASS];
    if (t->nclasses == 0 && cls == 1)
        t->nclasses = 1; /* no dummy row: class 0 is implicit */
    if (cls != t->nclasses)
        return fail(ps, "classes must be numbered 0 (optional dummy) or 1, then 2, 3, ... in order; "
                        "expected class ",
                    NULL, t->nclasses, true);
    if (cls >= GA_MAX_SIZE_CLASSES)
        return fail(ps, "too many classes: the maximum is (class 0 included) ", NULL,
                    GA_MAX_SIZE_CLASSES, true);
    if (cls == 0) {
        for (int c = 0; c < MAX_COLUMNS; c++)
            if (c != COL_CLASS && v[c] != 0)
                return fail(ps, "class 0 is the dummy class: every column must be 0", NULL, 0,
                            false);
    }
    t->size[cls] = (uint32_t)v[COL_SIZE];
    t->npages[cls] = (uint32_t)v[COL_NPAGES];
    memcpy(ps->given[cls], v, sizeof v);
    ps->lines[cls] = ps->line;
    t->nclasses = (uint32_t)cls + 1;
    return 0;
}

/* The restated columns against the derived figures. */
static int check_given(parser_t *ps, const ga_sizeclass_table_t *t)
{
    uint32_t prev = 0;
    for (unsigned c = 1; c < t->nclasses; c++) {
        uint64_t size = t->size[c], span = (uint64_t)t->npages[c] << GA_PAGE_SHIFT;
        uint64_t objects = span / size, tail = span - objects * size;
        /* Go's max_waste_pct, in hundredths of a percent (the file rounds to
         * two decimals: allow one unit either way) */
        uint64_t waste = ((size - prev - 1) * objects + tail) * 10000;
        uint64_t want[MAX_COLUMNS] = {[COL_SPAN] = span, [COL_OBJECTS] = objects,
                                      [COL_TAIL] = tail, [COL_MAGIC] = t->magic[c]};
        ps->line = ps->lines[c];
        for (int k = COL_SPAN; k < MAX_COLUMNS; k++) {
            if (!ps->has[k])
                continue;
            uint64_t g = ps->given[c][k];
            bool ok = k == COL_WASTE ? g * span + span >= waste && waste + span >= g * span
                                     : g == want[k];
            if (!ok)
                return fail(ps, "disagrees with the sizes and page counts: column ",
                            column_names[k], 0, false);
        }
        prev = t->size[c];
    }
    return 0;
}

static bool junk(unsigned char ch, bool comment)
{
    if (ch == '\t')
        return false;
    if (ch < 0x20 || ch == 0x7f)
        return true;
    return ch >= 0x80 && !comment; /* UTF-8 only in comments */
}

static int parse(parser_t *ps, char *buf, size_t n, ga_sizeclass_table_t *t)
{
    size_t pos = 0;
    t->nclasses = 0;
    while (pos < n) {
        char *nl = memchr(buf + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - buf) : n, ln = end - pos;
        char *s = buf + pos;
        ps->line++;
        pos = end + 1;
        if (ln > 0 && s[ln - 1] == '\r')
            ln--;
        bool comment = ln > 0 && s[0] == '#';
        for (size_t i = 0; i < ln; i++)
            if (junk((unsigned char)s[i], comment))
                return fail(ps, "unexpected byte (not a text table?): ", NULL, (unsigned char)s[i],
                            true);
        if (ln == 0 || comment)
            continue;
        if (ps->ncols == 0) {
            if (parse_header(ps, s, ln) != 0)
                return -1;
        } else if (parse_row(ps, t, s, ln) != 0) {
            return -1;
        }
    }
    ps->line = 0;
    if (ps->ncols == 0)
        return fail(ps, "no header line (class, bytes_per_obj, npages, ...)", NULL, 0, false);
    if (t->nclasses < 2)
        return fail(ps, "no size classes", NULL, 0, false);
    return 0;
}

/* Reads the file into file_buf; its length, or -1 after fail(). */
static long read_file(parser_t *ps, const char *path)
{
    int fd = ga_sys_open_file(path, GA_FILE_READ);
    if (fd < 0)
        return fail(ps, "cannot open the file: ", ga_sys_error_text(-fd), 0, false);
    size_t n = 0;
    for (;;) {
        long r = ga_sys_read(fd, file_buf + n, FILE_CAP + 1 - n);
        if (r < 0) {
            ga_sys_close(fd);
            return fail(ps, "cannot read the file: ", ga_sys_error_text((int)-r), 0, false);
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > FILE_CAP) {
            ga_sys_close(fd);
            return fail(ps, "file too large (a table has at most 65536 bytes)", NULL, 0, false);
        }
    }
    ga_sys_close(fd);
    if (n == 0)
        return fail(ps, "empty file", NULL, 0, false);
    return (long)n;
}

int ga_sizeclass_file_read(const char *path, unsigned align, ga_sizeclass_table_t *t, char *why,
                           size_t len)
{
    ga_lock(&file_lock);
    parser_t *ps = &parser;
    memset(ps, 0, sizeof *ps);
    memset(t, 0, sizeof *t);
    ps->why = why;
    ps->len = len;
    int rc = -1;
    long n = read_file(ps, path);
    if (n > 0 && parse(ps, file_buf, (size_t)n, t) == 0) {
        unsigned bad;
        char reason[160];
        if (ga_sizeclass_table_complete(t, align, &bad, reason, sizeof reason) != 0) {
            ga_buf_t b = {why, 0, len};
            if (len > 0)
                why[0] = '\0';
            if (bad != 0) {
                ga_buf_str(&b, "line ");
                ga_buf_uint(&b, ps->lines[bad]);
                ga_buf_str(&b, " (class ");
                ga_buf_uint(&b, bad);
                ga_buf_str(&b, ", ");
                ga_buf_uint(&b, t->size[bad]);
                ga_buf_str(&b, " B): ");
            }
            ga_buf_str(&b, reason);
        } else if (check_given(ps, t) == 0) {
            t->name = NULL; /* the caller names it */
            rc = 0;
        }
    }
    ga_unlock(&file_lock);
    return rc;
}
