/* The sampled heap profile as pprof's profile.proto, gzipped (Go's
 * runtime/pprof protomem.go and proto.go), written at exit for
 * GOALLOC_HEAP_PROFILE (mprof.c keeps the samples). A minimal protobuf
 * encoder (varints and length-delimited fields), gzip with stored
 * (uncompressed) deflate blocks and CRC-32, and the mappings of
 * /proc/self/maps with the GNU build id read from each object's notes in
 * memory. No malloc: scratch memory is mmap'd and unmapped after. Also
 * the stacks of misuse reports. See malloc.c for the overview. */
#include <string.h>

#include "internal.h"

/* ---- gzip stream of stored blocks ------------------------------------------------- */

#define BLOCK 65535u
typedef struct out {
    int fd, err;
    uint32_t crc, total;
    size_t len;
    unsigned char buf[BLOCK];
} out_t;

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static void raw_write(out_t *o, const void *p, size_t n)
{
    if (o->err == 0)
        o->err = ga_write_all(o->fd, p, n);
}

static void emit_block(out_t *o, bool last)
{
    unsigned char h[5] = {last ? 1 : 0, (unsigned char)o->len, (unsigned char)(o->len >> 8),
                          (unsigned char)~o->len, (unsigned char)(~o->len >> 8)};
    raw_write(o, h, 5);
    raw_write(o, o->buf, o->len);
    o->len = 0;
}

static void put(out_t *o, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        o->crc = crc_table[(o->crc ^ c[i]) & 0xFF] ^ (o->crc >> 8);
        o->buf[o->len++] = c[i];
        if (o->len == BLOCK)
            emit_block(o, false);
    }
    o->total += (uint32_t)n;
}

static void gz_start(out_t *o, int fd)
{
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    if (crc_table[1] == 0)
        crc_init();
    o->fd = fd;
    o->err = 0;
    o->crc = 0xFFFFFFFFu;
    o->total = 0;
    o->len = 0;
    raw_write(o, hdr, sizeof hdr);
}

static int gz_end(out_t *o)
{
    emit_block(o, true);
    uint32_t c = ~o->crc, t = o->total;
    unsigned char tr[8] = {(unsigned char)c, (unsigned char)(c >> 8), (unsigned char)(c >> 16),
                           (unsigned char)(c >> 24), (unsigned char)t, (unsigned char)(t >> 8),
                           (unsigned char)(t >> 16), (unsigned char)(t >> 24)};
    raw_write(o, tr, 8);
    return o->err;
}

/* ---- protobuf ------------------------------------------------------------------- */

/* A message under construction, in caller memory. */
typedef struct msg {
    unsigned char *p;
    size_t len, cap;
} msg_t;

static void m_byte(msg_t *m, unsigned char c)
{
    if (m->len < m->cap)
        m->p[m->len] = c;
    m->len++;
}

static void m_varint(msg_t *m, uint64_t v)
{
    while (v >= 0x80) {
        m_byte(m, (unsigned char)(v | 0x80));
        v >>= 7;
    }
    m_byte(m, (unsigned char)v);
}

static void m_uint(msg_t *m, unsigned field, uint64_t v) /* wire type 0 */
{
    m_varint(m, (uint64_t)field << 3);
    m_varint(m, v);
}

static void m_bytes(msg_t *m, unsigned field, const void *p, size_t n) /* wire type 2 */
{
    m_varint(m, (uint64_t)field << 3 | 2);
    m_varint(m, n);
    for (size_t i = 0; i < n; i++)
        m_byte(m, ((const unsigned char *)p)[i]);
}

/* Top-level field of the Profile: message m (which must have fit). */
static void emit_msg(out_t *o, unsigned field, const msg_t *m)
{
    unsigned char h[16];
    msg_t t = {h, 0, sizeof h};
    m_varint(&t, (uint64_t)field << 3 | 2);
    m_varint(&t, m->len);
    put(o, h, t.len);
    put(o, m->p, m->len);
}

/* profile.proto field numbers */
enum {
    P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_STRING = 6,
    P_PERIOD_TYPE = 11, P_PERIOD = 12, P_DEFAULT_TYPE = 14,
};

/* The fixed strings, by index into string_table (0 must be ""). */
static const char *const fixed[] = {
    "", "alloc_objects", "count", "alloc_space", "bytes", "inuse_objects", "inuse_space",
    "alloc_waste", "inuse_waste", "space", "requested",
};
enum { S_ALLOC_OBJ = 1, S_COUNT, S_ALLOC_SPACE, S_BYTES, S_INUSE_OBJ, S_INUSE_SPACE,
       S_ALLOC_WASTE, S_INUSE_WASTE, S_SPACE, S_REQUESTED, S_FIXED };
static const unsigned types[][2] = {
    {S_ALLOC_OBJ, S_COUNT}, {S_ALLOC_SPACE, S_BYTES}, {S_INUSE_OBJ, S_COUNT},
    {S_INUSE_SPACE, S_BYTES}, {S_ALLOC_WASTE, S_BYTES}, {S_INUSE_WASTE, S_BYTES},
};
#define NTYPES (sizeof types / sizeof types[0])

/* ---- mappings ------------------------------------------------------------------- */

#define MAX_MAPS 2048
typedef struct map {
    uintptr_t start, end, off;
    unsigned name, build_id; /* string indices (0: none) */
} map_t;

typedef struct scratch {
    char maps_text[1 << 20];
    char strs[1 << 18];      /* the strings beyond the fixed ones, NUL-separated */
    size_t strs_len;
    unsigned nstrs;
    map_t maps[MAX_MAPS];
    unsigned nmaps;
    uintptr_t *locs;         /* location hash: address per id - 1 */
    uint32_t *loc_ids;       /* open addressing: slot -> id (0: empty) */
    size_t loc_cap;
    uint32_t nlocs;
} scratch_t;

static unsigned add_string(scratch_t *sc, const char *s, size_t n)
{
    if (sc->strs_len + n + 1 > sizeof sc->strs)
        return 0;
    memcpy(sc->strs + sc->strs_len, s, n);
    sc->strs[sc->strs_len + n] = '\0';
    sc->strs_len += n + 1;
    return S_FIXED + sc->nstrs++;
}

static uintptr_t parse_hex(const char **p)
{
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
        if (d == 16)
            return v;
        v = v << 4 | d;
    }
}

/* The GNU build id of the ELF object whose file offset 0 is mapped at
 * [start, end), read from its notes where they lie inside that range;
 * its length in hex digits written to hex (0: none). */
static size_t build_id(uintptr_t start, uintptr_t end, char *hex, size_t cap)
{
    typedef struct { unsigned char ident[16]; uint16_t type, machine; uint32_t version;
                     uint64_t entry, phoff, shoff; uint32_t flags; uint16_t ehsize, phentsize,
                     phnum, shentsize, shnum, shstrndx; } ehdr_t;
    typedef struct { uint32_t type, flags; uint64_t offset, vaddr, paddr, filesz, memsz, align; } phdr_t;
    const ehdr_t *e = (const ehdr_t *)start;
    if (end - start < sizeof *e || memcmp(e->ident, "\x7f" "ELF\x02", 5) != 0 ||
        e->phentsize != sizeof(phdr_t) || e->phoff > end - start ||
        (uint64_t)e->phnum * sizeof(phdr_t) > end - start - e->phoff)
        return 0;
    const phdr_t *ph = (const phdr_t *)(start + e->phoff);
    uintptr_t bias = 0;
    bool found = false;
    for (unsigned i = 0; i < e->phnum && !found; i++)
        if (ph[i].type == 1 /* PT_LOAD */ && ph[i].offset == 0) {
            bias = start - (uintptr_t)ph[i].vaddr;
            found = true;
        }
    if (!found)
        return 0;
    for (unsigned i = 0; i < e->phnum; i++) {
        if (ph[i].type != 4 /* PT_NOTE */)
            continue;
        uintptr_t a = bias + (uintptr_t)ph[i].vaddr, z = a + (uintptr_t)ph[i].filesz;
        if (a < start || z > end || z < a)
            continue;
        while (a + 12 <= z) {
            const uint32_t *w = (const uint32_t *)a;
            uintptr_t name = a + 12, desc = name + ((w[0] + 3) & ~3u), next = desc + ((w[1] + 3) & ~3u);
            if (next > z || next < a)
                break;
            if (w[2] == 3 /* NT_GNU_BUILD_ID */ && w[0] == 4 && memcmp((const void *)name, "GNU", 4) == 0 &&
                2 * (size_t)w[1] < cap) {
                static const char digits[] = "0123456789abcdef";
                const unsigned char *d = (const unsigned char *)desc;
                for (uint32_t k = 0; k < w[1]; k++) {
                    hex[2 * k] = digits[d[k] >> 4];
                    hex[2 * k + 1] = digits[d[k] & 15];
                }
                return 2 * (size_t)w[1];
            }
            a = next;
        }
    }
    return 0;
}

/* One line of /proc/self/maps: "start-end perms offset dev inode path". */
typedef struct maps_line {
    uintptr_t start, end, off;
    bool readable, exec;
    const char *path; /* up to eol; empty for anonymous mappings */
    size_t path_len;
    const char *next; /* the next line */
} maps_line_t;

static void parse_maps_line(const char *p, maps_line_t *m)
{
    const char *eol = strchr(p, '\n'), *q = p;
    if (eol == NULL)
        eol = p + strlen(p);
    m->start = parse_hex(&q);
    q++;
    m->end = parse_hex(&q);
    q++;
    m->readable = q < eol && q[0] == 'r';
    m->exec = q + 2 < eol && q[2] == 'x';
    q = q + 5 < eol ? q + 5 : eol;
    m->off = parse_hex(&q);
    for (int f = 0; f < 2 && q < eol; f++) { /* dev, inode */
        while (q < eol && *q == ' ')
            q++;
        while (q < eol && *q != ' ')
            q++;
    }
    while (q < eol && *q == ' ')
        q++;
    m->path = q;
    m->path_len = (size_t)(eol - q);
    m->next = *eol ? eol + 1 : eol;
}

/* The executable file mappings of /proc/self/maps, with their build ids. */
static void read_maps(scratch_t *sc)
{
    long n = ga_sys_read_maps(sc->maps_text, sizeof sc->maps_text);
    uintptr_t elf_start = 0, elf_end = 0; /* the last offset-0 mapping of a file */
    const char *elf_name = NULL;
    size_t elf_len = 0;
    maps_line_t l;
    for (const char *p = sc->maps_text; n > 0 && *p != '\0'; p = l.next) {
        parse_maps_line(p, &l);
        if (l.path_len == 0 || *l.path != '/')
            continue;
        if (l.off == 0 && l.readable) {
            elf_start = l.start;
            elf_end = l.end;
            elf_name = l.path;
            elf_len = l.path_len;
        }
        if (l.exec && sc->nmaps < MAX_MAPS) {
            map_t *m = &sc->maps[sc->nmaps++];
            m->start = l.start;
            m->end = l.end;
            m->off = l.off;
            m->name = add_string(sc, l.path, l.path_len);
            m->build_id = 0;
            char hex[128];
            size_t h = elf_name != NULL && elf_len == l.path_len && memcmp(elf_name, l.path, l.path_len) == 0
                           ? build_id(elf_start, elf_end, hex, sizeof hex) : 0;
            if (h > 0)
                m->build_id = add_string(sc, hex, h);
        }
    }
}

static unsigned mapping_of(const scratch_t *sc, uintptr_t a)
{
    for (unsigned i = 0; i < sc->nmaps; i++)
        if (a >= sc->maps[i].start && a < sc->maps[i].end)
            return i + 1;
    return 0;
}

/* The location id of address a (frames' return address - 1, the call). */
static uint32_t location_of(scratch_t *sc, uintptr_t a)
{
    size_t i = (size_t)((a * 0x9E3779B97F4A7C15ull) >> 17) & (sc->loc_cap - 1);
    for (; sc->loc_ids[i] != 0; i = (i + 1) & (sc->loc_cap - 1))
        if (sc->locs[sc->loc_ids[i] - 1] == a)
            return sc->loc_ids[i];
    sc->locs[sc->nlocs++] = a;
    sc->loc_ids[i] = sc->nlocs;
    return sc->nlocs;
}

static void value_type(out_t *o, unsigned field, unsigned type, unsigned unit)
{
    unsigned char b[32];
    msg_t m = {b, 0, sizeof b};
    m_uint(&m, 1, type);
    m_uint(&m, 2, unit);
    emit_msg(o, field, &m);
}

static int64_t scaled(uint64_t v, double f) { return (int64_t)((double)v * f + 0.5); }

/* One Sample message per bucket with anything sampled (REQUIRES: prof_lock). */
static void write_samples(out_t *o, scratch_t *sc)
{
    unsigned char buf[2048], packed[1024];
    for (ga_bucket_t *b = ga_prof_buckets_locked(); b != NULL; b = b->all) {
        msg_t m = {buf, 0, sizeof buf}, pk = {packed, 0, sizeof packed};
        for (unsigned i = 0; i < b->nstk; i++)
            m_varint(&pk, location_of(sc, b->stk[i] - 1));
        m_bytes(&m, 1, packed, pk.len);
        uint64_t in_n = b->allocs - b->frees, in_b = b->alloc_bytes - b->free_bytes;
        uint64_t in_w = in_b - (b->alloc_req - b->free_req);
        double fa = ga_prof_scale(b->allocs, b->alloc_bytes), fi = ga_prof_scale(in_n, in_b);
        int64_t v[NTYPES] = {scaled(b->allocs, fa), scaled(b->alloc_bytes, fa), scaled(in_n, fi),
                             scaled(in_b, fi), scaled(b->alloc_bytes - b->alloc_req, fa),
                             scaled(in_w, fi)};
        pk.len = 0;
        for (unsigned i = 0; i < NTYPES; i++)
            m_varint(&pk, (uint64_t)v[i]);
        m_bytes(&m, 2, packed, pk.len);
        /* label bytes = the mean object size (as Go's), requested = mean request */
        unsigned char lb[48];
        for (int k = 0; k < 2; k++) {
            msg_t l = {lb, 0, sizeof lb};
            m_uint(&l, 1, k == 0 ? S_BYTES : S_REQUESTED);
            m_uint(&l, 3, (k == 0 ? b->alloc_bytes : b->alloc_req) / (b->allocs ? b->allocs : 1));
            m_bytes(&m, 3, lb, l.len);
        }
        if (m.len <= m.cap)
            emit_msg(o, P_SAMPLE, &m);
    }
}

int ga_heap_profile_write(int fd)
{
    if (ga_sample_rate == 0)
        return -1;
    static out_t o; /* 64 KiB: static, under prof_lock */
    size_t frames = 0;
    ga_prof_lock();
    for (ga_bucket_t *b = ga_prof_buckets_locked(); b != NULL; b = b->all)
        frames += b->nstk;
    size_t cap = 16;
    while (cap < 2 * frames + 2)
        cap *= 2;
    size_t bytes = sizeof(scratch_t) + frames * sizeof(uintptr_t) + cap * sizeof(uint32_t);
    bytes = (bytes + ga_sys_page_size() - 1) & ~(ga_sys_page_size() - 1);
    scratch_t *sc = ga_sys_reserve(0, bytes, ga_sys_page_size());
    if (sc == NULL) {
        ga_prof_unlock();
        return 12; /* ENOMEM */
    }
    sc->locs = (uintptr_t *)(sc + 1);
    sc->loc_ids = (uint32_t *)(sc->locs + frames);
    sc->loc_cap = cap;
    read_maps(sc);
    gz_start(&o, fd);
    for (unsigned i = 0; i < NTYPES; i++)
        value_type(&o, P_SAMPLE_TYPE, types[i][0], types[i][1]);
    write_samples(&o, sc);
    unsigned char buf[128];
    for (unsigned i = 0; i < sc->nmaps; i++) {
        const map_t *mp = &sc->maps[i];
        msg_t m = {buf, 0, sizeof buf};
        m_uint(&m, 1, i + 1);
        m_uint(&m, 2, mp->start);
        m_uint(&m, 3, mp->end);
        m_uint(&m, 4, mp->off);
        m_uint(&m, 5, mp->name);
        if (mp->build_id)
            m_uint(&m, 6, mp->build_id);
        emit_msg(&o, P_MAPPING, &m);
    }
    for (uint32_t id = 1; id <= sc->nlocs; id++) {
        msg_t m = {buf, 0, sizeof buf};
        m_uint(&m, 1, id);
        unsigned mid = mapping_of(sc, sc->locs[id - 1]);
        if (mid)
            m_uint(&m, 2, mid);
        m_uint(&m, 3, sc->locs[id - 1]);
        emit_msg(&o, P_LOCATION, &m);
    }
    value_type(&o, P_PERIOD_TYPE, S_SPACE, S_BYTES);
    {
        msg_t m = {buf, 0, sizeof buf};
        m_uint(&m, P_PERIOD, ga_sample_rate);
        m_uint(&m, P_DEFAULT_TYPE, S_INUSE_SPACE);
        put(&o, buf, m.len);
    }
    for (unsigned i = 0; i < S_FIXED; i++) {
        msg_t m = {buf, 0, sizeof buf};
        m_bytes(&m, P_STRING, fixed[i], strlen(fixed[i]));
        put(&o, buf, m.len);
    }
    for (size_t off = 0; off < sc->strs_len;) {
        size_t n = strlen(sc->strs + off);
        unsigned char h[16];
        msg_t m = {h, 0, sizeof h};
        m_varint(&m, (uint64_t)P_STRING << 3 | 2);
        m_varint(&m, n);
        put(&o, h, m.len);
        put(&o, sc->strs + off, n);
        off += n + 1;
    }
    int err = gz_end(&o);
    ga_prof_unlock();
    ga_sys_free(sc, bytes);
    return err;
}

/* ---- stacks of misuse reports ------------------------------------------------- */

/* One line per frame: "    #i 0xADDR OBJECT+0xOFFSET", ADDR the
 * call (return address - 1) and OFFSET its offset in the object's file,
 * which `goalloc symbolize` turns into function and file:line. No malloc:
 * /proc/self/maps is read into memory mapped for it. */
void ga_print_stack(int fd, const uintptr_t *stk, unsigned n)
{
    size_t cap = 256 << 10;
    char *maps = ga_sys_reserve(0, cap, ga_sys_page_size());
    if (maps != NULL && ga_sys_read_maps(maps, cap) < 0)
        maps[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        uintptr_t a = stk[i] - 1;
        char line[GA_PATH_MAX + 96];
        ga_buf_t b = {line, 0, sizeof line};
        ga_buf_str(&b, "    #");
        ga_buf_uint(&b, i);
        ga_buf_str(&b, " ");
        ga_buf_hex(&b, a);
        maps_line_t l;
        for (const char *p = maps; p != NULL && *p != '\0'; p = l.next) {
            parse_maps_line(p, &l);
            if (a >= l.start && a < l.end) {
                ga_buf_str(&b, " ");
                for (size_t k = 0; k < l.path_len && b.len + 24 < b.cap; k++)
                    line[b.len++] = l.path[k];
                line[b.len] = '\0';
                ga_buf_str(&b, "+");
                ga_buf_hex(&b, a - l.start + l.off);
                break;
            }
        }
        ga_buf_str(&b, "\n");
        ga_write_all(fd, line, b.len);
    }
    if (maps != NULL)
        ga_sys_free(maps, cap);
}
