/* Fixed-size allocators for the allocator's own metadata (Go's mfixalloc.go)
 * and a persistent bump allocator for memory that lives for the whole
 * process (Go's persistentalloc). Both sit on mem.h, never on malloc.
 * Freed objects are kept on a list and reused for the same type, so a
 * struct handed out once stays that type forever (type stability is what
 * makes racy page-map reads safe). See malloc.c for the overview. */
#include <errno.h>
#include <string.h>

#include "inline.h"

#define GA_FIXALLOC_CHUNK (16u << 10)       /* Go _FixAllocChunk */
#define GA_PERSISTENT_CHUNK (256u << 10)    /* Go persistentChunkSize */

static ga_lock_t persistent_lock = GA_LOCK_INIT;
static uintptr_t persistent_next;
static size_t persistent_left;

void ga_persistent_lock(void) { ga_lock(&persistent_lock); }
void ga_persistent_unlock(void) { ga_unlock(&persistent_lock); }
void ga_persistent_fork_child(void) { ga_lock_init(&persistent_lock); }

/* Memory that is never freed, 64-byte aligned, zeroed; NULL when the OS
 * refuses. Requests over a quarter chunk get their own mapping. */
void *ga_persistent_alloc(size_t size)
{
    size = (size + GA_CACHE_LINE - 1) & ~(size_t)(GA_CACHE_LINE - 1);
    size_t page = ga_sys_page_size();
    if (size >= GA_PERSISTENT_CHUNK / 4) {
        size_t bytes = (size + page - 1) & ~(page - 1);
        void *p = ga_sys_reserve(0, bytes, page);
        if (p != NULL)
            GA_STAT_ADD(ga_metadata_bytes, bytes);
        return p;
    }
    ga_lock(&persistent_lock);
    if (persistent_left < size) {
        void *chunk = ga_sys_reserve(0, GA_PERSISTENT_CHUNK, page);
        if (chunk == NULL) {
            ga_unlock(&persistent_lock);
            return NULL;
        }
        persistent_next = (uintptr_t)chunk;
        persistent_left = GA_PERSISTENT_CHUNK;
        GA_STAT_ADD(ga_metadata_bytes, GA_PERSISTENT_CHUNK);
    }
    void *p = (void *)persistent_next;
    persistent_next += size;
    persistent_left -= size;
    ga_unlock(&persistent_lock);
    return p;
}

void ga_fixalloc_init(ga_fixalloc_t *f, size_t size, void *(*fallback)(size_t bytes))
{
    memset(f, 0, sizeof *f);
    f->size = (size + 15) & ~(size_t)15;
    f->fallback = fallback;
}

/* REQUIRES: the caller serialises calls on f (each pool belongs to a lock). */
void *ga_fixalloc_alloc(ga_fixalloc_t *f)
{
    void *p = f->list;
    if (p != NULL) {
        f->list = *(void **)p;
        memset(p, 0, f->size);
        f->inuse++;
        return p;
    }
    if (f->nchunk < f->size) {
        size_t chunk = f->size > GA_FIXALLOC_CHUNK ? f->size : GA_FIXALLOC_CHUNK;
        void *c = ga_persistent_alloc(chunk);
        if (c == NULL && f->fallback != NULL)
            c = f->fallback(chunk);
        if (c == NULL)
            return NULL;
        f->chunk = (uintptr_t)c;
        f->nchunk = chunk;
        f->mapped += chunk;
    }
    p = (void *)f->chunk;
    f->chunk += f->size;
    f->nchunk -= f->size;
    f->inuse++;
    return p; /* fresh persistent memory is zero */
}

void ga_fixalloc_free(ga_fixalloc_t *f, void *p)
{
    *(void **)p = f->list;
    f->list = p;
    f->inuse--;
}
