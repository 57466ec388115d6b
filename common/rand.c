/* rand.c: the randomness seam; getrandom(2) unless a test installs a source. */
#include "common/common.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/random.h>

static _Atomic(rand_fn *) rand_source;

void rand_set_source(rand_fn *fn)
{
    atomic_store(&rand_source, fn);
}

int rand_bytes(void *buf, size_t n)
{
    rand_fn *fn = atomic_load(&rand_source);
    if (fn != NULL)
        return fn(buf, n);
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
