/* Our stand-in for the header ggml's CMake generates from ggml-version.h.in.
 * ggml.c only needs these two strings (returned by ggml_version()/ggml_commit()).
 * The version is the one declared in the pinned sources' CMakeLists.txt. */
#pragma once

#define GGML_VERSION "0.26.0"
#define GGML_COMMIT  "llama-cpp-sys-2-0.1.161"
