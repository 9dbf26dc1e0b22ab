//! CPU-time measurements for criterion, read from `/proc` (no unsafe, no
//! extra dependency).
//!
//! The kernel's per-thread `schedstat` holds the thread's time on CPU in
//! nanoseconds, but for a running thread it is only brought up to date at a
//! scheduler tick or a context switch. So each reading first calls
//! `sched_yield` (`std::thread::yield_now`), which updates the calling
//! thread's figure; the other threads of the process are idle (parked, so
//! exact) when a measurement starts or ends. A reading costs a few
//! microseconds, against iterations of hundreds of microseconds or more.
//!
//! CPU time, unlike wall time, does not count the time a thread waits for a
//! core that another process holds, so the figures stay comparable on a
//! busy machine.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

static WALL: WallTime = WallTime;

/// The first field of a `schedstat` file: nanoseconds on CPU.
fn schedstat(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of the calling thread: for benchmarks whose work all runs on
/// the bench thread (a tokio current-thread runtime).
pub(crate) struct ThreadCpu;

/// CPU time of the whole process: every thread's time, summed.
pub(crate) struct ProcessCpu;

/// The calling thread's CPU time so far.
pub(crate) fn thread_cpu() -> Duration {
    std::thread::yield_now();
    let ns =
        schedstat("/proc/thread-self/schedstat".as_ref()).expect("/proc/thread-self/schedstat");
    Duration::from_nanos(ns)
}

/// The process's CPU time so far, over the threads alive now.
pub(crate) fn process_cpu() -> Duration {
    std::thread::yield_now();
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    // A thread may end between the listing and the read: it then counts 0.
    let ns: u64 = tasks
        .flatten()
        .filter_map(|task| schedstat(&task.path().join("schedstat")))
        .sum();
    Duration::from_nanos(ns)
}

macro_rules! cpu_measurement {
    ($name:ident, $read:ident) => {
        impl Measurement for $name {
            type Intermediate = Duration;
            type Value = Duration;

            fn start(&self) -> Duration {
                $read()
            }
            fn end(&self, start: Duration) -> Duration {
                $read().saturating_sub(start)
            }
            fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
                *v1 + *v2
            }
            fn zero(&self) -> Duration {
                Duration::ZERO
            }
            fn to_f64(&self, value: &Duration) -> f64 {
                value.as_nanos() as f64
            }
            fn formatter(&self) -> &dyn ValueFormatter {
                // Nanoseconds, as for the wall clock, so its formatter fits
                // (times, and bytes or elements per second).
                WALL.formatter()
            }
        }
    };
}

cpu_measurement!(ThreadCpu, thread_cpu);
cpu_measurement!(ProcessCpu, process_cpu);
