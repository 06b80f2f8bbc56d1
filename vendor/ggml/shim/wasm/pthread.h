/* Minimal pthread.h for wasm32 (wasi-libc 2022 has none). Only what ggml-cpu.c uses is
 * declared; the types themselves come from wasi-libc (musl) <sys/types.h>.
 *
 * Two builds:
 * - single-threaded (pkg/): ggml computes with one thread, so pthread_create fails (EAGAIN: a
 *   request for more threads cannot silently run on one that does not exist), mutexes and
 *   conditions are no-ops, and pthread_cond_wait, which would wait forever, reports an error.
 * - threaded (pkg-threads/, ECHO_WASM_THREADS, shared memory and atomics): threads are the JS
 *   host's workers, parked in Rust (vendor/ggml/src/threads.rs), which implements
 *   create/join. Mutexes and conditions are futexes on wasm's atomic wait/notify.
 * Everything here is static inline, so the module exports no pthread symbols. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PTHREAD_MUTEX_INITIALIZER {{{0}}}
#define PTHREAD_COND_INITIALIZER  {{{0}}}

#ifdef ECHO_WASM_THREADS

/* In Rust (threads.rs): hands fn(arg) to an idle pool worker (EAGAIN if none is idle); waits for
 * a handed-out thread to return. pthread_t is the worker's slot + 1. */
int echo_thread_create(unsigned long *t, void *(*fn)(void *), void *arg);
int echo_thread_join(unsigned long t, void **ret);

static inline int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
    (void)a;
    unsigned long id = 0;
    int rc = echo_thread_create(&id, fn, arg);
    *t = (pthread_t)id;
    return rc;
}
static inline int pthread_join(pthread_t t, void **ret) { return echo_thread_join((unsigned long)t, ret); }

/* Futex word of a mutex: 0 free, 1 locked, 2 locked with (maybe) waiters (Drepper's mutex). */
static inline int *echo_futex(pthread_mutex_t *m) { return &m->__u.__i[0]; }

static inline int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a) {
    (void)a;
    __atomic_store_n(echo_futex(m), 0, __ATOMIC_SEQ_CST);
    return 0;
}
static inline int pthread_mutex_destroy(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_lock(pthread_mutex_t *m) {
    int *f = echo_futex(m), c = 0;
    if (__atomic_compare_exchange_n(f, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
    if (c != 2) c = __atomic_exchange_n(f, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        __builtin_wasm_memory_atomic_wait32(f, 2, -1);
        c = __atomic_exchange_n(f, 2, __ATOMIC_ACQUIRE);
    }
    return 0;
}
static inline int pthread_mutex_unlock(pthread_mutex_t *m) {
    int *f = echo_futex(m);
    if (__atomic_exchange_n(f, 0, __ATOMIC_RELEASE) == 2) __builtin_wasm_memory_atomic_notify(f, 1);
    return 0;
}

/* A condition is a sequence number: waiters sleep while it is unchanged, signals bump it. */
static inline int *echo_seq(pthread_cond_t *c) { return &c->__u.__i[0]; }

static inline int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a) {
    (void)a;
    __atomic_store_n(echo_seq(c), 0, __ATOMIC_SEQ_CST);
    return 0;
}
static inline int pthread_cond_destroy(pthread_cond_t *c) { (void)c; return 0; }
static inline int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
    int seq = __atomic_load_n(echo_seq(c), __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(m);
    __builtin_wasm_memory_atomic_wait32(echo_seq(c), seq, -1);
    /* Relock as contended: other waiters may sleep on the mutex, and our unlock must wake them. */
    int *f = echo_futex(m);
    while (__atomic_exchange_n(f, 2, __ATOMIC_ACQUIRE) != 0) __builtin_wasm_memory_atomic_wait32(f, 2, -1);
    return 0;
}
static inline int pthread_cond_broadcast(pthread_cond_t *c) {
    __atomic_fetch_add(echo_seq(c), 1, __ATOMIC_SEQ_CST);
    __builtin_wasm_memory_atomic_notify(echo_seq(c), -1u);
    return 0;
}
static inline int pthread_cond_signal(pthread_cond_t *c) {
    __atomic_fetch_add(echo_seq(c), 1, __ATOMIC_SEQ_CST);
    __builtin_wasm_memory_atomic_notify(echo_seq(c), 1);
    return 0;
}

#else

static inline int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
    (void)t; (void)a; (void)fn; (void)arg;
    return EAGAIN;
}
static inline int pthread_join(pthread_t t, void **ret) { (void)t; (void)ret; return ESRCH; }

static inline int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a) { (void)m; (void)a; return 0; }
static inline int pthread_mutex_destroy(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_lock(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_unlock(pthread_mutex_t *m) { (void)m; return 0; }

static inline int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a) { (void)c; (void)a; return 0; }
static inline int pthread_cond_destroy(pthread_cond_t *c) { (void)c; return 0; }
static inline int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) { (void)c; (void)m; return EINVAL; }
static inline int pthread_cond_broadcast(pthread_cond_t *c) { (void)c; return 0; }
static inline int pthread_cond_signal(pthread_cond_t *c) { (void)c; return 0; }

#endif

#ifdef __cplusplus
}
#endif
