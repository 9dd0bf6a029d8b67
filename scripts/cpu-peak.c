// This CPU's f32 FMA ceiling, measured: every core runs 16 independent FMA chains (enough to hide the
// latency on two FMA ports) with 512-bit (AVX-512) and then 256-bit (AVX2) vectors. The scoring figures in
// the README ("Scoring at any size") are set against it.
//
//   gcc -O3 -march=native -pthread scripts/cpu-peak.c -o /tmp/cpu-peak && /tmp/cpu-peak [threads]
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 16
#define ITERATIONS 400000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((target("avx512f"))) static float chains512(long n) {
    __m512 a[CHAINS], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(a[i]);
    return s;
}

__attribute__((target("avx2,fma"))) static float chains256(long n) {
    __m256 a[CHAINS], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    float s = 0, t[8];
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(t, a[i]);
        for (int j = 0; j < 8; j++) s += t[j];
    }
    return s;
}

static volatile float sink;
static double gflops[64][2];

static void *run(void *arg) {
    long id = (long)arg;
    double t = now();
    sink = chains512(ITERATIONS);
    gflops[id][0] = ITERATIONS * CHAINS * 16.0 * 2 / (now() - t) / 1e9;
    t = now();
    sink = chains256(ITERATIONS);
    gflops[id][1] = ITERATIONS * CHAINS * 8.0 * 2 / (now() - t) / 1e9;
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || threads > 64) threads = 2;
    pthread_t th[64];
    for (long i = 0; i < threads; i++) pthread_create(&th[i], 0, run, (void *)i);
    double total[2] = {0, 0};
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], 0);
        total[0] += gflops[i][0];
        total[1] += gflops[i][1];
    }
    printf("%d threads: AVX-512 %.1f GFLOP/s, AVX2 %.1f GFLOP/s (f32 FMA, 2 FLOP each)\n", threads,
           total[0], total[1]);
    return 0;
}
