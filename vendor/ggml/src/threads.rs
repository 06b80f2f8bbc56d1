//! The threads behind `pthread_create`/`pthread_join` in the threaded wasm build
//! (`shim/wasm/pthread.h`). A thread is a JS worker of the host's that instantiated the module on
//! the same shared memory, took a slot ([`register`]) and parked in [`park`], which runs one
//! thread body after another, forever. `pthread_create` cannot start a worker (that needs the
//! JS event loop, which the waiting engine thread blocks), so the host parks its workers before
//! any computation; with no idle slot it fails with `EAGAIN`.

use core::ffi::c_void;
use std::sync::{Condvar, Mutex};

type Body = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

enum Slot {
    Idle,
    /// A body and its argument (a pointer into the shared memory, as usize to be `Send`).
    Ready(Body, usize),
    Running,
    /// Finished, with the body's return value, until joined.
    Done(usize),
}

static SLOTS: Mutex<Vec<Slot>> = Mutex::new(Vec::new());
/// Notified on every change of a slot; few threads wait, so one condition serves them all.
static CHANGED: Condvar = Condvar::new();

/// wasi-libc's values (`__WASI_ERRNO_AGAIN`, `__WASI_ERRNO_SRCH`).
const EAGAIN: i32 = 6;
const ESRCH: i32 = 71;

/// A new idle slot for the calling worker, which must then call [`park`] with it.
pub fn register() -> usize {
    let mut slots = SLOTS.lock().unwrap();
    slots.push(Slot::Idle);
    slots.len() - 1
}

/// How many slots wait for a body: the threads `pthread_create` can start now.
pub fn idle() -> usize {
    SLOTS.lock().unwrap().iter().filter(|s| matches!(s, Slot::Idle)).count()
}

/// Runs the bodies handed to `slot`, forever (a worker's whole life after [`register`]).
pub fn park(slot: usize) -> ! {
    loop {
        let mut slots = SLOTS.lock().unwrap();
        let (body, arg) = loop {
            if let Slot::Ready(body, arg) = slots[slot] {
                break (body, arg);
            }
            slots = CHANGED.wait(slots).unwrap();
        };
        slots[slot] = Slot::Running;
        drop(slots);
        // SAFETY: `pthread_create`'s contract: the body may run on another thread with its argument.
        let ret = unsafe { body(arg as *mut c_void) };
        SLOTS.lock().unwrap()[slot] = Slot::Done(ret as usize);
        CHANGED.notify_all();
    }
}

/// `pthread_create` without attributes: `*t` is the slot + 1.
#[no_mangle]
pub unsafe extern "C" fn echo_thread_create(t: *mut usize, body: Body, arg: *mut c_void) -> i32 {
    let mut slots = SLOTS.lock().unwrap();
    let Some(slot) = slots.iter().position(|s| matches!(s, Slot::Idle)) else { return EAGAIN };
    slots[slot] = Slot::Ready(body, arg as usize);
    *t = slot + 1;
    CHANGED.notify_all();
    0
}

#[no_mangle]
pub unsafe extern "C" fn echo_thread_join(t: usize, ret: *mut *mut c_void) -> i32 {
    let mut slots = SLOTS.lock().unwrap();
    let Some(slot) = t.checked_sub(1).filter(|&s| s < slots.len()) else { return ESRCH };
    loop {
        match slots[slot] {
            Slot::Done(value) => {
                if !ret.is_null() {
                    *ret = value as *mut c_void;
                }
                slots[slot] = Slot::Idle;
                CHANGED.notify_all();
                return 0;
            }
            Slot::Idle => return ESRCH,
            _ => slots = CHANGED.wait(slots).unwrap(),
        }
    }
}
