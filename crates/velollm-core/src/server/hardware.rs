//! The hardware of one machine as `velollm detect` reports it: GPUs, CPU, memory, OS (DESIGN §8).
//!
//! Pure types: `velollm_engine::detect` fills them in, `optimize` reasons over them, results record them.
//! Whatever could not be detected is `None`, never a guess.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything `velollm detect` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hardware {
    /// Operating system family (`linux`, `macos`, `windows`, …: Rust's `std::env::consts::OS`).
    pub os: String,
    /// Operating system name and version, when known (e.g. `Linux 24.04 Ubuntu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Kernel version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// The CPU.
    pub cpu: CpuInfo,
    /// System memory.
    pub memory: MemoryInfo,
    /// GPUs found, in the order found (empty: none detected).
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
}

/// The CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CpuInfo {
    /// Model (brand string), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Physical cores, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// Logical CPUs (hardware threads) the OS reports.
    pub threads: u32,
    /// Current frequency of the first CPU in MHz, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_mhz: Option<u32>,
    /// Maximum frequency in MHz (Linux cpufreq), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frequency_mhz: Option<u32>,
}

impl CpuInfo {
    /// Physical cores when known, else logical CPUs: the thread count inference engines should use.
    pub fn compute_cores(&self) -> u32 {
        self.cores.filter(|&c| c > 0).unwrap_or(self.threads).max(1)
    }
}

/// System memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryInfo {
    /// Total RAM in bytes.
    pub total_bytes: u64,
    /// RAM available for new allocations in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
}

/// Who made a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuVendor {
    /// NVIDIA (CUDA).
    Nvidia,
    /// AMD (ROCm/HIP).
    Amd,
    /// Apple silicon (Metal).
    Apple,
    /// Intel (SYCL/Vulkan).
    Intel,
    /// Anything else.
    Other,
}

impl GpuVendor {
    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            GpuVendor::Nvidia => "NVIDIA",
            GpuVendor::Amd => "AMD",
            GpuVendor::Apple => "Apple",
            GpuVendor::Intel => "Intel",
            GpuVendor::Other => "other",
        }
    }
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GpuInfo {
    /// Vendor.
    pub vendor: GpuVendor,
    /// Model name as the driver reports it.
    pub name: String,
    /// Dedicated memory in bytes (for unified memory: the system RAM it shares), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Driver version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// True when the GPU shares system RAM (Apple silicon).
    #[serde(default)]
    pub unified_memory: bool,
    /// How it was detected (`nvidia-smi`, `sysfs`, `system_profiler`).
    pub source: String,
}

/// Where a model's weights and KV cache would live on this machine, and how much room there is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Accelerator<'a> {
    /// A GPU with dedicated memory (the largest one; `count` GPUs of that vendor).
    Dedicated {
        /// The GPU with the most memory.
        gpu: &'a GpuInfo,
        /// Its memory in bytes.
        memory_bytes: u64,
        /// GPUs of the same vendor with known memory (tensor parallelism candidates).
        count: usize,
    },
    /// A GPU sharing system RAM (Apple silicon).
    Unified {
        /// The GPU.
        gpu: &'a GpuInfo,
    },
    /// No usable GPU: the CPU runs the model from RAM.
    Cpu,
}

impl Hardware {
    /// The accelerator a model would run on: the dedicated GPU with the most memory (NVIDIA or AMD, whose
    /// memory velollm can read), else an Apple GPU on unified memory, else the CPU. A GPU whose memory is
    /// unknown (an Intel GPU, or an NVIDIA card without `nvidia-smi`) is not counted: nothing can be
    /// reasoned about its capacity.
    pub fn accelerator(&self) -> Accelerator<'_> {
        let dedicated = self
            .gpus
            .iter()
            .filter(|g| !g.unified_memory && matches!(g.vendor, GpuVendor::Nvidia | GpuVendor::Amd))
            .filter_map(|g| g.memory_bytes.filter(|&m| m > 0).map(|m| (g, m)))
            .max_by_key(|&(_, m)| m);
        if let Some((gpu, memory_bytes)) = dedicated {
            let count = self
                .gpus
                .iter()
                .filter(|g| g.vendor == gpu.vendor && !g.unified_memory && g.memory_bytes.is_some_and(|m| m > 0))
                .count();
            return Accelerator::Dedicated { gpu, memory_bytes, count };
        }
        match self.gpus.iter().find(|g| g.unified_memory && g.vendor == GpuVendor::Apple) {
            Some(gpu) => Accelerator::Unified { gpu },
            None => Accelerator::Cpu,
        }
    }

    /// Memory a model may use where it runs: the largest GPU's dedicated memory, or (unified memory and CPU)
    /// the RAM available now, or total RAM when availability is unknown.
    pub fn usable_accelerator_bytes(&self) -> u64 {
        match self.accelerator() {
            Accelerator::Dedicated { memory_bytes, .. } => memory_bytes,
            Accelerator::Unified { .. } | Accelerator::Cpu => {
                self.memory.available_bytes.unwrap_or(self.memory.total_bytes)
            }
        }
    }

    /// A one-line summary, e.g. `2-core CPU · 23.4 GiB RAM · no GPU detected`.
    pub fn summary(&self) -> String {
        let cores = match self.cpu.cores {
            Some(c) if c != self.cpu.threads => format!("{c}-core/{}-thread", self.cpu.threads),
            _ => format!("{}-core", self.cpu.threads),
        };
        let cpu = match &self.cpu.model {
            Some(m) => format!("{cores} {m}"),
            None => format!("{cores} CPU"),
        };
        let gpus = if self.gpus.is_empty() {
            "no GPU detected".to_string()
        } else {
            self.gpus
                .iter()
                .map(|g| match (g.memory_bytes, g.unified_memory) {
                    (_, true) => format!("{} (unified memory)", g.name),
                    (Some(m), false) => format!("{} ({})", g.name, gib(m)),
                    (None, false) => format!("{} (memory unknown)", g.name),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("{cpu} · {} RAM · {gpus} · {}/{}", gib(self.memory.total_bytes), self.os, self.arch)
    }
}

/// Bytes as GiB with one decimal, e.g. `23.4 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB)
}

/// One GiB in bytes, as a float.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(vendor: GpuVendor, name: &str, memory: Option<u64>, unified: bool) -> GpuInfo {
        GpuInfo {
            vendor,
            name: name.into(),
            memory_bytes: memory,
            driver: None,
            unified_memory: unified,
            source: "test".into(),
        }
    }

    fn machine(gpus: Vec<GpuInfo>) -> Hardware {
        Hardware {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu: CpuInfo { cores: Some(8), threads: 16, ..Default::default() },
            memory: MemoryInfo { total_bytes: 32 << 30, available_bytes: Some(30 << 30) },
            gpus,
            ..Default::default()
        }
    }

    #[test]
    fn the_largest_dedicated_gpu_is_the_accelerator() {
        let hw = machine(vec![
            gpu(GpuVendor::Intel, "Intel UHD", None, false),
            gpu(GpuVendor::Nvidia, "RTX 3060", Some(12 << 30), false),
            gpu(GpuVendor::Nvidia, "RTX 4090", Some(24 << 30), false),
        ]);
        match hw.accelerator() {
            Accelerator::Dedicated { gpu, memory_bytes, count } => {
                assert_eq!(gpu.name, "RTX 4090");
                assert_eq!(memory_bytes, 24 << 30);
                assert_eq!(count, 2);
            }
            other => panic!("expected a dedicated GPU, got {other:?}"),
        }
        assert_eq!(hw.usable_accelerator_bytes(), 24 << 30);
    }

    #[test]
    fn unified_memory_and_cpu_use_available_ram() {
        let apple = machine(vec![gpu(GpuVendor::Apple, "Apple M2", Some(32 << 30), true)]);
        assert!(matches!(apple.accelerator(), Accelerator::Unified { .. }));
        assert_eq!(apple.usable_accelerator_bytes(), 30 << 30);
        let intel = machine(vec![gpu(GpuVendor::Intel, "Intel UHD", None, false)]);
        assert_eq!(intel.accelerator(), Accelerator::Cpu);
        let mut none = machine(vec![]);
        none.memory.available_bytes = None;
        assert_eq!(none.usable_accelerator_bytes(), 32 << 30);
    }

    #[test]
    fn compute_cores_prefers_physical_cores() {
        let mut cpu = CpuInfo { cores: Some(4), threads: 8, ..Default::default() };
        assert_eq!(cpu.compute_cores(), 4);
        cpu.cores = None;
        assert_eq!(cpu.compute_cores(), 8);
        cpu.threads = 0;
        assert_eq!(cpu.compute_cores(), 1);
    }

    #[test]
    fn summary_names_what_was_found() {
        let hw = machine(vec![gpu(GpuVendor::Nvidia, "RTX 4090", Some(24 << 30), false)]);
        assert_eq!(hw.summary(), "8-core/16-thread CPU · 32.0 GiB RAM · RTX 4090 (24.0 GiB) · linux/x86_64");
    }
}
