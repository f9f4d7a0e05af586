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
