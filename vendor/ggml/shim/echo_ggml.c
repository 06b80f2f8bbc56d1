/* Our own small C helpers compiled with ggml (all targets).
 *
 * ggml_init() takes, and ggml_graph_plan() returns, a struct by value. Rust's C ABI
 * for wasm32-unknown-unknown only matches clang's for by-value aggregates since the
 * 2025 switch to the standard wasm C ABI; these pointer-based wrappers make the
 * question moot on every compiler version and target. */
#include <stddef.h>
#include "ggml.h"
#include "ggml-cpu.h"

struct ggml_context * echo_ggml_init(const struct ggml_init_params * params) {
    return ggml_init(*params);
}

/* With a threadpool, the plan computes on its threads; with NULL, ggml would start and join
 * n_threads - 1 threads for every graph, so callers pass NULL only with n_threads == 1. */
void echo_ggml_graph_plan(const struct ggml_cgraph * graph, int n_threads, struct ggml_threadpool * pool,
                          struct ggml_cplan * out) {
    *out = ggml_graph_plan(graph, n_threads, pool);
}

/* A threadpool with ggml's default parameters (returned by value, hence the wrapper). Its
 * n_threads - 1 threads start now and live until ggml_threadpool_free. */
struct ggml_threadpool * echo_ggml_threadpool_new(int n_threads) {
    struct ggml_threadpool_params params = ggml_threadpool_params_default(n_threads);
    return ggml_threadpool_new(&params);
}

/* Layout probe for the Rust mirror of struct ggml_tensor (checked by a unit test):
 * fills out[0..n) with sizeof and the field offsets, returns how many it wrote. */
size_t echo_ggml_tensor_layout(size_t * out, size_t n) {
    const size_t v[] = {
        sizeof(struct ggml_tensor),
        offsetof(struct ggml_tensor, type),
        offsetof(struct ggml_tensor, buffer),
        offsetof(struct ggml_tensor, ne),
        offsetof(struct ggml_tensor, nb),
        offsetof(struct ggml_tensor, op),
        offsetof(struct ggml_tensor, op_params),
        offsetof(struct ggml_tensor, flags),
        offsetof(struct ggml_tensor, src),
        offsetof(struct ggml_tensor, view_src),
        offsetof(struct ggml_tensor, view_offs),
        offsetof(struct ggml_tensor, data),
        offsetof(struct ggml_tensor, name),
        offsetof(struct ggml_tensor, extra),
        sizeof(struct ggml_init_params),
        offsetof(struct ggml_init_params, no_alloc),
        sizeof(struct ggml_cplan),
        offsetof(struct ggml_cplan, use_ref),
    };
    size_t count = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < n && i < count; i++) out[i] = v[i];
    return count;
}
