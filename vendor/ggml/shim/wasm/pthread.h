/* Minimal single-threaded pthread.h for wasm32 (wasi-libc 2022 has none).
 *
 * ggml-cpu.c includes <pthread.h> unconditionally, but only starts threads
 * when asked for more than one. Our wasm build always computes with one
 * thread, so:
 *   - pthread_create fails (EAGAIN), so a request for >1 thread cannot
 *     silently run on a thread that does not exist;
 *   - mutexes/conditions are no-ops (nothing to wait for on one thread);
 *   - pthread_cond_wait would wait forever, so it reports an error instead.
 * Only what ggml-cpu.c uses is declared; everything is static inline so the
 * final module has no pthread symbols. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The pthread_* types themselves come from wasi-libc (musl) <sys/types.h>. */
#define PTHREAD_MUTEX_INITIALIZER {{{0}}}
#define PTHREAD_COND_INITIALIZER  {{{0}}}

static inline int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
    (void)t; (void)a; (void)fn; (void)arg;
    return EAGAIN;
}
static inline int pthread_join(pthread_t t, void **ret) { (void)t; (void)ret; return ESRCH; }
static inline pthread_t pthread_self(void) { return (pthread_t)0; }

static inline int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a) { (void)m; (void)a; return 0; }
static inline int pthread_mutex_destroy(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_lock(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_unlock(pthread_mutex_t *m) { (void)m; return 0; }

static inline int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a) { (void)c; (void)a; return 0; }
static inline int pthread_cond_destroy(pthread_cond_t *c) { (void)c; return 0; }
static inline int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) { (void)c; (void)m; return EINVAL; }
static inline int pthread_cond_broadcast(pthread_cond_t *c) { (void)c; return 0; }
static inline int pthread_cond_signal(pthread_cond_t *c) { (void)c; return 0; }

#ifdef __cplusplus
}
#endif
