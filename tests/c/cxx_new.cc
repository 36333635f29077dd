// cxx_new: C++ operator new and delete under the preloaded allocator.
//
// Usage: cxx_new [wrongsize | wrongsize-array]
//                                (meant to run with LD_PRELOAD=libgoalloc.so)
//
// Without an argument: new and delete of many sizes (plain, array, aligned,
// nothrow, sized), std::bad_alloc for an impossible size, the new-handler
// loop, and checks that the operators are goalloc's (ga_stats_version is
// defined, the operators' definitions are in libgoalloc*.so, and
// malloc_usable_size of new char[100] is goalloc's 112-byte class). One "FAIL: ..." line per failed check, then
// "cxx_new: N failures"; exit status 1 on any failure.
// wrongsize: ::operator delete(::operator new(48), 100), which goalloc
// reports and aborts on; wrongsize-array: the same for delete[].
//
// Build: g++ -O0 (the compiler may otherwise elide new/delete pairs).
#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

namespace {

struct alignas(64) A64 {
    char c[100];
};
struct alignas(8192) APage {
    char c[10];
};
struct WithDtor { // non-trivial destructor: new[] adds a cookie, delete[] is sized
    int x = 1;
    char pad[20];
    ~WithDtor() { x = 0; }
};
struct S48 {
    char c[48];
};

int failures;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            std::printf("FAIL: ");                                                         \
            std::printf(__VA_ARGS__);                                                      \
            std::printf("\n");                                                             \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

int handler_calls;
void handler()
{
    handler_calls++;
    std::set_new_handler(nullptr); // the next failure throws
}

uintptr_t addr(const void *p) { return reinterpret_cast<uintptr_t>(p); }

} // namespace

int main(int argc, char **argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc > 1 && std::strcmp(argv[1], "wrongsize") == 0) {
        void *p = ::operator new(48);
        ::operator delete(p, static_cast<std::size_t>(100));
        std::printf("cxx_new: wrong size not caught\n");
        return 0;
    }
    if (argc > 1 && std::strcmp(argv[1], "wrongsize-array") == 0) {
        void *p = ::operator new[](100000);
        ::operator delete[](p, static_cast<std::size_t>(200000));
        std::printf("cxx_new: wrong size not caught\n");
        return 0;
    }

    CHECK(dlsym(RTLD_DEFAULT, "ga_stats_version") != nullptr, "not running under goalloc");
    static const char *const operators[] = {"_Znwm", "_Znam", "_ZdlPv", "_ZdlPvm", "_ZdaPvm",
                                            "_ZnwmSt11align_val_t", "_ZdlPvmSt11align_val_t"};
    for (const char *name : operators) { // the definition the program binds to is goalloc's
        Dl_info info;
        void *f = dlsym(RTLD_DEFAULT, name);
        CHECK(f != nullptr && dladdr(f, &info) != 0 && info.dli_fname != nullptr &&
                  std::strstr(info.dli_fname, "libgoalloc") != nullptr,
              "%s comes from %s", name, f && dladdr(f, &info) ? info.dli_fname : "nowhere");
    }
    char *c100 = new char[100];
    CHECK(malloc_usable_size(c100) == 112, "new char[100]: usable size %zu, not goalloc's 112",
          malloc_usable_size(c100));
    delete[] c100;

    static const std::size_t sizes[] = {0, 1, 5, 15, 16, 48, 100, 1000, 5000, 32768, 40000,
                                        100000, 1 << 20};
    for (std::size_t n : sizes) {
        char *p = new char[n];
        std::memset(p, 0x5a, n);
        CHECK(malloc_usable_size(p) >= n, "new char[%zu]: usable size %zu", n, malloc_usable_size(p));
        delete[] p;
        void *q = ::operator new(n);
        ::operator delete(q, n); // sized, the right size
        void *r = ::operator new[](n);
        ::operator delete[](r, n);
        void *s = ::operator new(n, std::nothrow);
        CHECK(s != nullptr, "new(%zu, nothrow) = NULL", n);
        ::operator delete(s, std::nothrow);
        static const std::size_t aligns[] = {32, 64, 4096, 8192, 1 << 16};
        for (std::size_t a : aligns) {
            void *t = ::operator new(n, std::align_val_t(a));
            CHECK(addr(t) % a == 0, "new(%zu, align %zu) = %p", n, a, t);
            ::operator delete(t, n, std::align_val_t(a));
            void *u = ::operator new[](n, std::align_val_t(a), std::nothrow);
            CHECK(u != nullptr && addr(u) % a == 0, "new[](%zu, align %zu, nothrow) = %p", n, a, u);
            ::operator delete[](u, std::align_val_t(a));
        }
    }

    S48 *s48 = new S48; // delete: the sized operator delete(void*, 48)
    delete s48;
    WithDtor *wd = new WithDtor[10]; // delete[]: sized, with the cookie
    CHECK(wd[9].x == 1, "new WithDtor[10] not constructed");
    delete[] wd;
    A64 *a64 = new A64;
    CHECK(addr(a64) % 64 == 0, "new A64 = %p", static_cast<void *>(a64));
    delete a64;
    A64 *a64s = new A64[7];
    CHECK(addr(a64s) % 64 == 0, "new A64[7] = %p", static_cast<void *>(a64s));
    delete[] a64s;
    APage *ap = new APage;
    CHECK(addr(ap) % 8192 == 0, "new APage = %p", static_cast<void *>(ap));
    delete ap;

    volatile std::size_t huge = std::size_t(1) << 62;
    char *nt = new (std::nothrow) char[huge];
    CHECK(nt == nullptr, "new (nothrow) char[1 << 62] = %p", static_cast<void *>(nt));
    A64 *nta = new (std::nothrow) A64[huge / 128];
    CHECK(nta == nullptr, "new (nothrow) A64[1 << 55] = %p", static_cast<void *>(nta));

    bool caught = false;
    try {
        char *h = new char[huge];
        h[0] = 1;
        delete[] h;
    } catch (const std::bad_alloc &) {
        caught = true;
    }
    CHECK(caught, "new char[1 << 62] did not throw std::bad_alloc");
    caught = false;
    try {
        A64 *h = new A64[huge / 128];
        delete[] h;
    } catch (const std::bad_alloc &) {
        caught = true;
    }
    CHECK(caught, "new A64[1 << 55] did not throw std::bad_alloc");

    std::set_new_handler(handler);
    caught = false;
    try {
        char *h = new char[huge];
        delete[] h;
    } catch (const std::bad_alloc &) {
        caught = true;
    }
    CHECK(caught && handler_calls == 1, "new-handler: caught %d, %d calls", caught, handler_calls);

    std::printf("cxx_new: %d failures\n", failures);
    return failures != 0;
}
