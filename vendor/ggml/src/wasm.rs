//! wasm32 glue that lets ggml (compiled against wasi-libc) live in a browser module built
//! by wasm-bindgen. It fixes three traps (see /work/shared/notes/ggml-wasm.md):
//!
//! 1. WASI imports: rustc links with `--allow-undefined`, so libc's 8 WASI calls would
//!    silently become `wasi_snapshot_preview1` imports no browser provides. We define the
//!    symbols libc actually references (`__imported_wasi_snapshot_preview1_*`) here.
//! 2. Destructors after every call: libc.a brings `__wasm_call_dtors`, so wasm-ld would wrap
//!    every export in a thunk running atexit handlers and stdio teardown. Referencing
//!    `__wasm_call_ctors` ourselves (and calling it once, in `init`) disables the thunks.
//! 3. Two allocators: wasi-libc's dlmalloc would take memory Rust's allocator already owns.
//!    We implement the C allocation family on Rust's allocator, so libc's malloc is never
//!    linked and every C allocation is counted by `crate::mem`.
//!
//! The `unsafe extern "C"` functions here are called by C code only; their safety contract is
//! the C function's they stand in for (`malloc(3)`, the WASI spec).
#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_char, c_void, CStr};
use core::sync::atomic::{AtomicBool, Ordering};
use std::alloc::{self, Layout};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    fn console_log(s: &str);
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    pub(crate) fn console_error(s: &str);
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;
    // `catch`: a JS scope without `performance` throws, and we fall back to Date.now().
    #[wasm_bindgen(js_namespace = performance, js_name = now, catch)]
    fn performance_now() -> Result<f64, JsValue>;
}

extern "C" {
    /// Synthesised by wasm-ld: runs C/C++ static constructors (and libc's init).
    fn __wasm_call_ctors();
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// Runs the C/C++ static constructors, once. Call it before any other use of ggml, e.g.
/// from the `#[wasm_bindgen(start)]` function (`crate::init()` and `Context::new` call it).
pub fn init() {
    if !STARTED.swap(true, Ordering::SeqCst) {
        unsafe { __wasm_call_ctors() };
        // Without a callback ggml prints to stderr and then traps with a bare `unreachable`;
        // with one, the reason at least reaches the console first.
        unsafe { crate::ggml_set_abort_callback(Some(on_ggml_abort)) };
    }
}

unsafe extern "C" fn on_ggml_abort(msg: *const c_char) {
    let msg = if msg.is_null() { "".into() } else { CStr::from_ptr(msg).to_string_lossy() };
    console_error(&format!("ggml aborted: {msg}"));
}

// ------------------------------------------------------------------ WASI imports
// Signatures are those of wasi-libc's `__imported_wasi_snapshot_preview1_*` declarations
// (pointers are i32, 64-bit values i64, results are WASI errno codes).

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOMEM: i32 = 48;
const ERRNO_SPIPE: i32 = 70;
const FILETYPE_CHARACTER_DEVICE: u8 = 2;

thread_local! {
    /// Partial lines of stdout and stderr: the console prints whole lines only.
    static LINES: RefCell<[Vec<u8>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

fn emit(fd: i32, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    if fd == 1 {
        console_log(&text)
    } else {
        console_error(&text)
    }
}

/// stdout -> console.log, stderr -> console.error, line by line.
#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_fd_write(
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> i32 {
    if fd != 1 && fd != 2 {
        return ERRNO_BADF;
    }
    // __wasi_ciovec_t is { const uint8_t *buf; size_t buf_len; } = two u32 on wasm32.
    let iovs = core::slice::from_raw_parts(iovs as usize as *const [u32; 2], iovs_len as usize);
    let mut total = 0usize;
    LINES.with(|lines| {
        let buf = &mut lines.borrow_mut()[fd as usize - 1];
        for &[ptr, len] in iovs {
            buf.extend_from_slice(core::slice::from_raw_parts(ptr as usize as *const u8, len as usize));
            total += len as usize;
        }
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            emit(fd, &buf[..nl]);
            buf.drain(..=nl);
        }
        if buf.len() > 16 * 1024 {
            // a very long line without newline: show it rather than hoard it
            emit(fd, buf);
            buf.clear();
        }
    });
    *(nwritten as usize as *mut u32) = total as u32;
    ERRNO_SUCCESS
}

/// stdin/stdout/stderr look like a terminal (character device, not seekable), so libc
/// line-buffers stdout; other descriptors do not exist.
#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_fd_fdstat_get(fd: i32, stat: i32) -> i32 {
    if !(0..=2).contains(&fd) {
        return ERRNO_BADF;
    }
    // __wasi_fdstat_t: { u8 filetype; u16 flags @2; u64 rights_base @8; u64 rights_inheriting @16 }
    let p = stat as usize as *mut u8;
    core::ptr::write_bytes(p, 0, 24);
    *p = FILETYPE_CHARACTER_DEVICE;
    ERRNO_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_fd_seek(_fd: i32, _off: i64, _whence: i32, _new: i32) -> i32 {
    ERRNO_SPIPE
}

#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_fd_close(_fd: i32) -> i32 {
    ERRNO_SUCCESS
}

/// Empty environment.
#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_environ_sizes_get(count: i32, buf_size: i32) -> i32 {
    *(count as usize as *mut u32) = 0;
    *(buf_size as usize as *mut u32) = 0;
    ERRNO_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_environ_get(_environ: i32, _buf: i32) -> i32 {
    ERRNO_SUCCESS
}

/// Realtime (id 0) from Date.now(), every other clock from performance.now(), in ns.
#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_clock_time_get(id: i32, _precision: i64, time: i32) -> i32 {
    let ms = if id == 0 { date_now() } else { performance_now().unwrap_or_else(|_| date_now()) };
    *(time as usize as *mut u64) = (ms * 1e6) as u64;
    ERRNO_SUCCESS
}

/// exit()/abort paths of libc: there is no process to end, so trap with a message.
#[no_mangle]
pub unsafe extern "C" fn __imported_wasi_snapshot_preview1_proc_exit(code: i32) -> ! {
    panic!("C code called exit({code})");
}

// ------------------------------------------------------------------ C allocation family
// Each block carries a header {size, align} just before the pointer we hand out; the
// header sits in the first `align` bytes of the Rust allocation, so `align` is also the
// offset of the user pointer and realloc keeps the layout of the header.

/// malloc's guarantee on wasm32 (max_align_t is 16 bytes, for long double).
const MIN_ALIGN: usize = 16;

#[repr(C)]
struct Header {
    size: usize,
    align: usize,
}

unsafe fn c_alloc(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    let align = align.max(MIN_ALIGN);
    let Some(total) = size.checked_add(align) else { return core::ptr::null_mut() };
    let Ok(layout) = Layout::from_size_align(total, align) else { return core::ptr::null_mut() };
    let base = if zeroed { alloc::alloc_zeroed(layout) } else { alloc::alloc(layout) };
    if base.is_null() {
        return core::ptr::null_mut();
    }
    let p = base.add(align);
    (p as *mut Header).sub(1).write(Header { size, align });
    p as *mut c_void
}

unsafe fn header(p: *mut c_void) -> Header {
    (p as *const Header).sub(1).read()
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    c_alloc(size, MIN_ALIGN, false)
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(bytes) => c_alloc(bytes, MIN_ALIGN, true),
        None => core::ptr::null_mut(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let h = header(p);
    let base = (p as *mut u8).sub(h.align);
    alloc::dealloc(base, Layout::from_size_align_unchecked(h.size + h.align, h.align));
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    let h = header(p);
    let Some(total) = size.checked_add(h.align) else { return core::ptr::null_mut() };
    let base = (p as *mut u8).sub(h.align);
    let old = Layout::from_size_align_unchecked(h.size + h.align, h.align);
    // On failure the old block stays valid, as C requires.
    let new_base = alloc::realloc(base, old, total);
    if new_base.is_null() {
        return core::ptr::null_mut();
    }
    let q = new_base.add(h.align);
    (q as *mut Header).sub(1).write(Header { size, align: h.align });
    q as *mut c_void
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return ERRNO_INVAL;
    }
    let p = c_alloc(size, align, false);
    if p.is_null() {
        return ERRNO_NOMEM;
    }
    *out = p;
    0
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    c_alloc(size, align, false)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        0
    } else {
        header(p).size
    }
}

// libc-internal aliases; without them libc.a's dlmalloc object still gets linked (and
// then clashes with the functions above).
#[no_mangle]
pub unsafe extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
    calloc(n, size)
}

#[no_mangle]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    free(p)
}
