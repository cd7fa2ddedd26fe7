/* Preloaded into pipeline jobs (LD_PRELOAD) so that MKL takes its Intel code paths on every x86-64 CPU.
 * MKL ignores MKL_CBWR=AVX2 on a CPU that its vendor check says is not Intel (AMD EPYC: its own
 * GEMM and vector-math kernels), so the same demo gave other numbers there. With this answer and
 * MKL_CBWR=AVX2 every AVX2+FMA CPU runs the same AVX2 kernels, which Zen executes as Intel does.
 * Built by `make` (molmix.runtime.MKL_INTEL_DISPATCH); tests/test_environment.py compares emulated
 * AMD and Intel CPUs with this machine. */
int mkl_serv_intel_cpu_true(void) { return 1; }
