/* ggml's barrier in the threaded wasm build: spin a while, as ggml does, then sleep on the
 * barrier's counter (wasm's atomic wait; the threads are workers, which may block). ggml only
 * spins, which costs nothing on idle cores; but a browser shares its cores with the page and
 * other tabs, and a thread spinning for one that is not running takes that thread's core: a
 * token took 3.8 s instead of 0.1 with two busy processes on two cores. Included once, by
 * ggml-cpu.c. */
#pragma once

#include <stdatomic.h>

/* Polls before sleeping: most barriers open within that when every thread has a core (the
 * figures are in vendor/ggml/build.rs). */
#define ECHO_BARRIER_SPINS (1 << 16)

/* Threads asleep at a barrier: the thread that opens one only notifies when there are some. */
static atomic_int echo_barrier_sleepers;

static inline void echo_barrier_wait(atomic_int *passed, int n) {
    for (int i = 0; i < ECHO_BARRIER_SPINS; i++) {
        if (atomic_load_explicit(passed, memory_order_relaxed) != n) return;
    }
    /* Seq-cst on both sides: either the opener sees this sleeper, or the wait below sees the
     * counter moved (it returns at once when the counter is no longer n). */
    atomic_fetch_add(&echo_barrier_sleepers, 1);
    while (atomic_load(passed) == n) __builtin_wasm_memory_atomic_wait32((int *)passed, n, -1);
    atomic_fetch_sub(&echo_barrier_sleepers, 1);
}

/* After the last thread bumped the counter. */
static inline void echo_barrier_open(atomic_int *passed) {
    if (atomic_load(&echo_barrier_sleepers) > 0) __builtin_wasm_memory_atomic_notify((int *)passed, -1u);
}
