//! The load-generating machine, recorded in every result.

use velollm_core::document::result::HostInfo;

/// Describe this machine: host name, OS, kernel, CPU and memory.
pub fn host_info() -> HostInfo {
    use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
    let sys = System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    HostInfo {
        hostname: System::host_name().unwrap_or_default(),
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu: sys.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default(),
        cpu_cores: sys.cpus().len() as u32,
        memory_bytes: sys.total_memory(),
    }
}

/// Raise this process's open-file limit to its hard limit, so that thousands of concurrent streams (one
/// socket each) fit; returns the soft limit in force afterwards.
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// How many descriptors `velollm` makes room for at start-up (see [`reserve_descriptors`]): 10,000
/// concurrent streams and their margin, for 128 KiB of kernel memory.
pub const DESCRIPTORS_RESERVED: u64 = 16_384;

/// Raise the open-file limit (as [`raise_open_files_limit`] does) and grow this process's descriptor table
/// now to hold `count` descriptors (at most the limit); returns the size made room for. Call it while the
/// process has one thread.
///
/// The kernel grows a descriptor table by doubling (64, 128, 256, …) when a new descriptor needs it, and in a
/// process with several threads each growth waits for an RCU grace period, during which every thread that
/// opens a descriptor waits too. Measured here: 15–33 ms each time the 256th and the 512th connection opened,
/// which made the first calls of a 1,000-session trace replay up to 33 ms late. With one thread the growth
/// needs no grace period, and a table never shrinks.
pub fn reserve_descriptors(count: u64) -> Option<u64> {
    use nix::fcntl::{FcntlArg, fcntl};
    let limit = raise_open_files_limit()?;
    let top = i32::try_from(count.min(limit)).ok()?.checked_sub(1)?;
    let null = std::fs::File::open("/dev/null").ok()?;
    // The lowest free descriptor at or above `top`: the table grows to hold it, and keeps that size once it is
    // closed.
    let high = fcntl(&null, FcntlArg::F_DUPFD_CLOEXEC(top)).ok()?;
    nix::unistd::close(high).ok()?;
    Some(u64::try_from(top).ok()? + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's size as the kernel reports it (`FDSize` in /proc/self/status).
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn the_descriptor_table_is_grown_to_the_size_asked_for() {
        let limit = raise_open_files_limit().unwrap();
        let wanted = 4096.min(limit);
        assert_eq!(reserve_descriptors(wanted), Some(wanted));
        assert!(table_size() >= wanted, "FDSize {} after reserving {wanted}", table_size());
        // The reserving descriptor was closed: the next one opened is a low one.
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!((std::os::fd::AsRawFd::as_raw_fd(&f) as u64) < wanted - 1);
    }
}
