//! `velollm detect`: this machine's GPUs, CPU, memory and OS, as text or JSON.

use crate::args::JsonArg;
use anyhow::Result;
use clap::Args;
use std::fmt::Write;
use velollm_core::server::hardware::{Hardware, gib};

/// `velollm detect` arguments.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The hardware as JSON (the same object every result records).
    #[command(flatten)]
    pub json: JsonArg,
}

/// Run `velollm detect`.
pub fn run(args: DetectArgs) -> Result<u8> {
    let hw = velollm_engine::detect::detect();
    if !args.json.on_stdout() {
        print!("{}", render(&hw));
    }
    args.json.write(&hw)?;
    Ok(0)
}

/// The hardware as text for people.
pub fn render(hw: &Hardware) -> String {
    let mut s = String::new();
    let os = match &hw.os_version {
        Some(v) => format!("{v} ({}/{})", hw.os, hw.arch),
        None => format!("{}/{}", hw.os, hw.arch),
    };
    let _ = writeln!(s, "OS      {os}{}", hw.kernel.as_deref().map(|k| format!(", kernel {k}")).unwrap_or_default());
    let c = &hw.cpu;
    let mut cpu = c.model.clone().unwrap_or_else(|| "unknown model".into());
    match c.cores {
        Some(cores) => {
            let _ = write!(cpu, " · {cores} cores, {} threads", c.threads);
        }
        None => {
            let _ = write!(cpu, " · {} threads", c.threads);
        }
    }
    match (c.frequency_mhz, c.max_frequency_mhz) {
        (Some(f), Some(m)) => {
            let _ = write!(cpu, " · {f} MHz (max {m} MHz)");
        }
        (Some(f), None) => {
            let _ = write!(cpu, " · {f} MHz");
        }
        (None, Some(m)) => {
            let _ = write!(cpu, " · max {m} MHz");
        }
        (None, None) => {}
    }
    let _ = writeln!(s, "CPU     {cpu}");
    let avail = hw.memory.available_bytes.map(|a| format!(", {} available", gib(a))).unwrap_or_default();
    let _ = writeln!(s, "RAM     {} total{avail}", gib(hw.memory.total_bytes));
    if hw.gpus.is_empty() {
        let _ = writeln!(s, "GPU     none detected (looked for nvidia-smi, /sys/class/drm and system_profiler)");
    }
    for g in &hw.gpus {
        let memory = match (g.memory_bytes, g.unified_memory) {
            (Some(m), true) => format!("{} unified memory", gib(m)),
            (Some(m), false) => gib(m),
            (None, _) => "memory unknown".into(),
        };
        let driver = g.driver.as_deref().map(|d| format!(" · driver {d}")).unwrap_or_default();
        let name = if g.name.to_ascii_lowercase().starts_with(&g.vendor.label().to_ascii_lowercase()) {
            g.name.clone()
        } else {
            format!("{} {}", g.vendor.label(), g.name)
        };
        let _ = writeln!(s, "GPU     {name} · {memory}{driver} (via {})", g.source);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::server::hardware::{CpuInfo, GpuInfo, GpuVendor, MemoryInfo};

    #[test]
    fn text_names_every_part() {
        let hw = Hardware {
            os: "linux".into(),
            os_version: Some("Linux 24.04 Ubuntu".into()),
            kernel: Some("6.8.0".into()),
            arch: "x86_64".into(),
            cpu: CpuInfo {
                model: Some("AMD Ryzen 9 7950X".into()),
                cores: Some(16),
                threads: 32,
                frequency_mhz: Some(4500),
                max_frequency_mhz: Some(5881),
            },
            memory: MemoryInfo { total_bytes: 64 << 30, available_bytes: Some(60 << 30) },
            gpus: vec![GpuInfo {
                vendor: GpuVendor::Nvidia,
                name: "NVIDIA GeForce RTX 4090".into(),
                memory_bytes: Some(24564 << 20),
                driver: Some("550.54.14".into()),
                unified_memory: false,
                source: "nvidia-smi".into(),
            }],
        };
        let text = render(&hw);
        assert_eq!(
            text,
            "OS      Linux 24.04 Ubuntu (linux/x86_64), kernel 6.8.0\n\
             CPU     AMD Ryzen 9 7950X · 16 cores, 32 threads · 4500 MHz (max 5881 MHz)\n\
             RAM     64.0 GiB total, 60.0 GiB available\n\
             GPU     NVIDIA GeForce RTX 4090 · 24.0 GiB · driver 550.54.14 (via nvidia-smi)\n"
        );
    }
}
