//! The `samverka` command: parse the arguments, run the command (see
//! [`samverka::cli`]), print what it says and exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let (command, json) = samverka::cli::parse();
    let label = command.label();
    match command.run() {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}", e.report(label, json));
            e.exit_code()
        }
    }
}

/// Every request allocates and frees many small buffers on both runtime
/// threads, which mimalloc's per-thread heaps make cheaper than the system
/// allocator (measured in docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3 gives pages a thread has freed back to the system only after
/// a delay (`purge_delay`, 1000 ms), so a gateway under load keeps a
/// second's worth of freed buffers resident. Purging at once lowered its
/// peak RSS at 64 requests in flight by about a tenth at no throughput
/// measured (docs/performance.md). `MIMALLOC_PURGE_DELAY` still decides
/// when set.
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() {
    /// `mi_option_purge_delay` in mimalloc's `mi_option_e`, which
    /// libmimalloc-sys does not name: the option just before
    /// `mi_option_use_numa_nodes`, which it does. Checked when this is
    /// built, so that a renumbering fails the build instead of setting
    /// another option.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    const _: () = assert!(libmimalloc_sys::mi_option_use_numa_nodes == PURGE_DELAY + 1);
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one option's value, which mimalloc reads atomically;
        // no pointer is passed.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
    }
}
