/* Replaces ggml-threading.cpp (which needs std::mutex) in our wasm build: a lock from our
 * pthread shim, a no-op in the single-threaded build and a futex in the threaded one. */
#include <pthread.h>
#include "ggml-threading.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void ggml_critical_section_start(void) { pthread_mutex_lock(&lock); }
void ggml_critical_section_end(void) { pthread_mutex_unlock(&lock); }
