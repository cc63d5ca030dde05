// Read bandwidth of this machine right now: a 1 GiB buffer summed with AVX2 loads by N
// threads, 5 passes (the first warms the pages). On a shared host the figure moves with other
// tenants' load, so print it beside every decode benchmark (the roofline is bytes per token
// over this).  cc -O2 -mavx2 -pthread bench/membw.c -o /tmp/membw && /tmp/membw 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define N (1UL << 30)
static char *buf;
static int threads;
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void *run(void *arg) {
    long id = (long)arg;
    size_t per = N / threads;
    char *p = buf + id * per;
    __m256i s = _mm256_setzero_si256();
    for (size_t i = 0; i < per; i += 128)
        for (int j = 0; j < 128; j += 32)
            s = _mm256_add_epi64(s, _mm256_load_si256((const __m256i *)(p + i + j)));
    long long r[4];
    _mm256_storeu_si256((__m256i *)r, s);
    return (void *)(r[0] + r[1] + r[2] + r[3]);
}
int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || threads > 64) threads = 2;
    buf = aligned_alloc(64, N);
    if (!buf) return 1;
    for (size_t i = 0; i < N; i += 4096) buf[i] = 1;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[64];
        double t0 = now();
        for (long i = 0; i < threads; i++) pthread_create(&th[i], 0, run, (void *)i);
        for (int i = 0; i < threads; i++) pthread_join(th[i], 0);
        printf("%d threads: %.1f GB/s\n", threads, N / (now() - t0) / 1e9);
    }
    return 0;
}
