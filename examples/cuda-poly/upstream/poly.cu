// poly: evaluate a polynomial of degree DEG at N points and report the throughput.
//
// One source, two builds: nvcc compiles it for the GPU (a kernel, timed with CUDA events), a C++ compiler for the
// CPU (the same evaluation function in a loop, timed in process CPU time). The degree is a run-time argument so
// that neither compiler can unroll the loops and fold the powers into one chain: the work is what the code says.
//
//   poly [--n N] [--deg D] [--reps R]   prints "backend: ...", "checksum: ...", "melem_s: X" (best of R)
//   poly --check                         compares with a double-precision reference; exit 1 if it drifts

#include <algorithm>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define HD __host__ __device__
#else
#define HD
#endif

static const int MAX_DEG = 64;

// y = sum_k c[k] * x^k
HD inline float poly_eval(float x, const float *c, int deg) {
    float sum = 0.0f;
    for (int k = 0; k <= deg; ++k) {
        float p = 1.0f;
        for (int j = 0; j < k; ++j) p *= x;
        sum += c[k] * p;
    }
    return sum;
}

static void coefficients(float *c, int deg) {
    for (int k = 0; k <= deg; ++k) c[k] = (k % 2 ? -1.0f : 1.0f) / (float)(k + 1);
}

static double reference(double x, const float *c, int deg) {
    double sum = 0.0, p = 1.0;
    for (int k = 0; k <= deg; ++k) { sum += c[k] * p; p *= x; }
    return sum;
}

#ifdef __CUDACC__
__constant__ float d_coef[MAX_DEG + 1];

__global__ void poly_kernel(const float *x, float *y, int n, int deg) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = poly_eval(x[i], d_coef, deg);
}

static void check_cuda(cudaError_t err, const char *what) {
    if (err != cudaSuccess) {
        fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(err));
        exit(2);
    }
}

// Runs the kernel reps times; returns the best time of one launch in seconds and leaves y filled.
static double run(const std::vector<float> &x, std::vector<float> &y, const float *c, int deg, int reps) {
    int n = (int)x.size();
    float *dx = nullptr, *dy = nullptr;
    check_cuda(cudaMalloc(&dx, n * sizeof(float)), "cudaMalloc");
    check_cuda(cudaMalloc(&dy, n * sizeof(float)), "cudaMalloc");
    check_cuda(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice), "copy in");
    check_cuda(cudaMemcpyToSymbol(d_coef, c, (deg + 1) * sizeof(float)), "coefficients");
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    int threads = 256, blocks = (n + threads - 1) / threads;
    poly_kernel<<<blocks, threads>>>(dx, dy, n, deg);              // warm-up launch
    check_cuda(cudaDeviceSynchronize(), "warm-up");
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        cudaEventRecord(start);
        poly_kernel<<<blocks, threads>>>(dx, dy, n, deg);
        cudaEventRecord(stop);
        check_cuda(cudaEventSynchronize(stop), "kernel");
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, start, stop);
        best = std::min(best, ms / 1000.0);
    }
    check_cuda(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost), "copy out");
    cudaFree(dx);
    cudaFree(dy);
    return best;
}

static const char *backend() {
    static char name[300];
    cudaDeviceProp prop;
    check_cuda(cudaGetDeviceProperties(&prop, 0), "device");
    snprintf(name, sizeof name, "cuda %s", prop.name);
    return name;
}
static const int DEFAULT_N = 1 << 24;
#else
static double run(const std::vector<float> &x, std::vector<float> &y, const float *c, int deg, int reps) {
    int n = (int)x.size();
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {            // CPU time: a shared machine's other jobs do not count
        std::clock_t t0 = std::clock();
        for (int i = 0; i < n; ++i) y[i] = poly_eval(x[i], c, deg);
        std::clock_t t1 = std::clock();
        best = std::min(best, std::max(1e-9, (double)(t1 - t0) / CLOCKS_PER_SEC));
    }
    return best;
}

static const char *backend() { return "cpu"; }
static const int DEFAULT_N = 1 << 18;
#endif

int main(int argc, char **argv) {
    int n = DEFAULT_N, deg = 24, reps = 5;
    bool check = false;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--deg") && i + 1 < argc) deg = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check")) check = true;
        else { fprintf(stderr, "usage: poly [--n N] [--deg D] [--reps R] [--check]\n"); return 2; }
    }
    if (n < 1 || deg < 0 || deg > MAX_DEG || reps < 1) { fprintf(stderr, "poly: bad arguments\n"); return 2; }
    if (check) n = std::min(n, 1 << 16);
    float c[MAX_DEG + 1];
    coefficients(c, deg);
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) x[i] = -0.9f + 1.8f * (float)i / (float)n;   // |x| < 1: the series stays tame
    double seconds = run(x, y, c, deg, reps);
    double checksum = 0.0, worst = 0.0;
    for (int i = 0; i < n; ++i) {
        checksum += y[i];
        double want = reference(x[i], c, deg);
        worst = std::max(worst, std::fabs(y[i] - want) / std::max(1e-3, std::fabs(want)));
    }
    printf("backend: %s\n", backend());
    printf("n: %d deg: %d reps: %d\n", n, deg, reps);
    printf("checksum: %.6f\n", checksum);
    printf("max_rel_err: %.3g\n", worst);
    printf("melem_s: %.3f\n", n / seconds / 1e6);
    if (check && worst > 1e-3) {
        fprintf(stderr, "poly --check: relative error %.3g exceeds 1e-3\n", worst);
        return 1;
    }
    return 0;
}
