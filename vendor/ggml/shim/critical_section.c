/* Replaces ggml-threading.cpp (which needs std::mutex) in our wasm build.
 * The wasm module is single-threaded: nothing can race, so the critical
 * section ggml takes around its lazy global initialisation is a no-op. */
#include "ggml-threading.h"

void ggml_critical_section_start(void) {}
void ggml_critical_section_end(void) {}
