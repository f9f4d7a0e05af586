//! Hardware detection for `velollm detect` and every result's metadata: CPU, memory and OS from sysinfo
//! (plus `/proc/cpuinfo` and cpufreq on Linux), GPUs from `nvidia-smi`, Linux sysfs (`/sys/class/drm`: AMD
//! VRAM, Intel and NVIDIA cards) and `system_profiler` on macOS.
//!
//! Fast and infallible: a missing tool means no such GPU, and each tool runs with a short timeout. Each
//! tool's output is parsed by a small pure function tested on captured samples.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use velollm_core::server::hardware::{CpuInfo, GpuInfo, GpuVendor, Hardware, MemoryInfo};

/// How long one detection tool may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(3);

/// Detect this machine's hardware. Never fails: what cannot be found is left out.
pub fn detect() -> Hardware {
    use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_frequency())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let first = sys.cpus().first();
    let mut cpu = CpuInfo {
        model: first.map(|c| c.brand().trim().to_string()).filter(|b| !b.is_empty()),
        cores: System::physical_core_count().and_then(|c| u32::try_from(c).ok()),
        threads: u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX),
        frequency_mhz: first.map(|c| c.frequency()).filter(|&f| f > 0).and_then(|f| u32::try_from(f).ok()),
        max_frequency_mhz: None,
    };
    if cpu.threads == 0 {
        cpu.threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    }
    let available = sys.available_memory();
    let mut hw = Hardware {
        os: std::env::consts::OS.to_string(),
        os_version: System::long_os_version(),
        kernel: System::kernel_version(),
        arch: std::env::consts::ARCH.to_string(),
        cpu,
        memory: MemoryInfo { total_bytes: sys.total_memory(), available_bytes: (available > 0).then_some(available) },
        gpus: Vec::new(),
    };
    if let Some(out) =
        run("nvidia-smi", &["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"])
    {
        hw.gpus.extend(parse_nvidia_smi(&out));
    }
    #[cfg(target_os = "linux")]
    linux(&mut hw);
    #[cfg(target_os = "macos")]
    macos(&mut hw);
    hw
}

#[cfg(target_os = "linux")]
fn linux(hw: &mut Hardware) {
    if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") {
        let (model, cores) = parse_cpuinfo(&text);
        hw.cpu.model = hw.cpu.model.take().or(model);
        hw.cpu.cores = hw.cpu.cores.or(cores);
    }
    hw.cpu.max_frequency_mhz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .and_then(|khz| u32::try_from(khz / 1000).ok())
        .filter(|&m| m > 0);
    let have_nvidia = hw.gpus.iter().any(|g| g.vendor == GpuVendor::Nvidia);
    hw.gpus.extend(drm_gpus(Path::new("/sys/class/drm"), have_nvidia));
}

/// GPUs under a `/sys/class/drm`-like folder: AMD with its VRAM, Intel, and (when `nvidia-smi` found none)
/// NVIDIA cards by PCI id.
pub fn drm_gpus(drm: &Path, have_nvidia: bool) -> Vec<GpuInfo> {
    let Ok(entries) = std::fs::read_dir(drm) else { return Vec::new() };
    let mut cards: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("card").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    cards.sort();
    let mut gpus = Vec::new();
    for card in cards {
        let dev = drm.join(&card).join("device");
        let read = |f: &str| std::fs::read_to_string(dev.join(f)).ok().map(|s| s.trim().to_string());
        let Some(vendor) = read("vendor").and_then(|v| pci_vendor(&v)) else { continue };
        if vendor == GpuVendor::Nvidia && have_nvidia {
            continue;
        }
        let device = read("device").unwrap_or_default();
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let memory = match vendor {
            GpuVendor::Amd => read("mem_info_vram_total").and_then(|v| v.parse::<u64>().ok()).filter(|&m| m > 0),
            _ => None,
        };
        let name = read("product_name")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{} GPU (PCI device {device})", vendor.label()));
        gpus.push(GpuInfo {
            vendor,
            name,
            memory_bytes: memory,
            driver,
            unified_memory: false,
            source: "sysfs".into(),
        });
    }
    gpus
}

/// The GPU vendor of a PCI vendor id (`0x10de`, `0x1002`, `0x8086`).
pub fn pci_vendor(id: &str) -> Option<GpuVendor> {
    match id.trim().to_ascii_lowercase().as_str() {
        "0x10de" => Some(GpuVendor::Nvidia),
        "0x1002" => Some(GpuVendor::Amd),
        "0x8086" => Some(GpuVendor::Intel),
        _ => None,
    }
}

#[cfg(target_os = "macos")]
fn macos(hw: &mut Hardware) {
    if hw.cpu.model.is_none() {
        hw.cpu.model = run("sysctl", &["-n", "machdep.cpu.brand_string"]).map(|s| s.trim().to_string());
    }
    if let Some(out) = run("system_profiler", &["SPDisplaysDataType", "-json"]) {
        hw.gpus.extend(parse_system_profiler(&out, hw.memory.total_bytes));
    }
}

/// Run a tool with [`TOOL_TIMEOUT`]; its standard output when it exits successfully in time.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if start.elapsed() > TOOL_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    Some(out)
}

/// Parse `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits` (memory in
/// MiB), one GPU per line.
pub fn parse_nvidia_smi(out: &str) -> Vec<GpuInfo> {
    out.lines()
        .filter_map(|line| {
            let mut f = line.rsplitn(3, ',').map(str::trim);
            let driver = f.next()?;
            let memory = f.next()?;
            let name = f.next()?;
            if name.is_empty() {
                return None;
            }
            let known = |s: &str| !s.is_empty() && !s.starts_with('[') && !s.eq_ignore_ascii_case("N/A");
            Some(GpuInfo {
                vendor: GpuVendor::Nvidia,
                name: name.to_string(),
                memory_bytes: memory.parse::<u64>().ok().filter(|&m| m > 0).map(|mib| mib * 1024 * 1024),
                driver: known(driver).then(|| driver.to_string()),
                unified_memory: false,
                source: "nvidia-smi".into(),
            })
        })
        .collect()
}

/// Parse `/proc/cpuinfo`: the model name, and physical cores as distinct (physical id, core id) pairs.
pub fn parse_cpuinfo(text: &str) -> (Option<String>, Option<u32>) {
    let mut model = None;
    let mut cores = std::collections::BTreeSet::new();
    let mut physical = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            physical = None;
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "model name" | "Model" if model.is_none() && !value.is_empty() => model = Some(value.to_string()),
            "physical id" => physical = Some(value.to_string()),
            "core id" => {
                cores.insert((physical.clone().unwrap_or_default(), value.to_string()));
            }
            _ => {}
        }
    }
    (model, u32::try_from(cores.len()).ok().filter(|&c| c > 0))
}

/// Parse `system_profiler SPDisplaysDataType -json`: Apple GPUs share the machine's `ram_bytes`; discrete
/// GPUs report their VRAM (`spdisplays_vram`, e.g. `8 GB`).
pub fn parse_system_profiler(json: &str, ram_bytes: u64) -> Vec<GpuInfo> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    let Some(items) = v.get("SPDisplaysDataType").and_then(|d| d.as_array()) else { return Vec::new() };
    items
        .iter()
        .filter_map(|g| {
            let name = g.get("sppci_model").and_then(|n| n.as_str())?.to_string();
            let vendor_text =
                g.get("spdisplays_vendor").and_then(|n| n.as_str()).unwrap_or_default().to_ascii_lowercase();
            let vendor = if vendor_text.contains("apple") || name.starts_with("Apple") {
                GpuVendor::Apple
            } else if vendor_text.contains("amd") || vendor_text.contains("ati") {
                GpuVendor::Amd
            } else if vendor_text.contains("intel") {
                GpuVendor::Intel
            } else if vendor_text.contains("nvidia") {
                GpuVendor::Nvidia
            } else {
                GpuVendor::Other
            };
            let unified = vendor == GpuVendor::Apple;
            let vram = ["spdisplays_vram", "spdisplays_vram_shared"]
                .iter()
                .find_map(|k| g.get(*k).and_then(|n| n.as_str()))
                .and_then(parse_size);
            Some(GpuInfo {
                vendor,
                name,
                memory_bytes: if unified { Some(ram_bytes).filter(|&r| r > 0) } else { vram },
                driver: g.get("spdisplays_mtlgpufamilysupport").and_then(|n| n.as_str()).map(str::to_string),
                unified_memory: unified,
                source: "system_profiler".into(),
            })
        })
        .collect()
}

/// `8 GB`, `1536 MB` → bytes (binary units, as macOS reports VRAM).
fn parse_size(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next()?.to_ascii_uppercase().as_str() {
        "GB" => 1u64 << 30,
        "MB" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines() {
        let out = "NVIDIA GeForce RTX 4090, 24564, 550.54.14\nNVIDIA H100 80GB HBM3, 81559, 535.129.03\n";
        let gpus = parse_nvidia_smi(out);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpus[0].memory_bytes, Some(24564 << 20));
        assert_eq!(gpus[0].driver.as_deref(), Some("550.54.14"));
        assert_eq!(gpus[1].name, "NVIDIA H100 80GB HBM3");
        // A comma in the name, and unknown fields.
        let odd = parse_nvidia_smi("Tesla, Custom, [N/A], [N/A]\n\ngarbage\n");
        assert_eq!(odd.len(), 1);
        assert_eq!(odd[0].name, "Tesla, Custom");
        assert_eq!(odd[0].memory_bytes, None);
        assert_eq!(odd[0].driver, None);
    }

    #[test]
    fn cpuinfo_counts_physical_cores() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: 0\n\n\
                    processor\t: 1\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: 0\n\n\
                    processor\t: 2\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: 1\n\n";
        assert_eq!(parse_cpuinfo(text), (Some("AMD EPYC 7B13".into()), Some(2)));
        // ARM: no model name or core ids.
        assert_eq!(parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\n"), (None, None));
    }

    #[test]
    fn system_profiler_apple_and_discrete() {
        let json = r#"{"SPDisplaysDataType":[
            {"_name":"Apple M2","sppci_model":"Apple M2","spdisplays_vendor":"sppci_vendor_Apple","sppci_cores":"10",
             "spdisplays_mtlgpufamilysupport":"spdisplays_metal3"},
            {"_name":"AMD Radeon Pro 5500M","sppci_model":"AMD Radeon Pro 5500M","spdisplays_vendor":"sppci_vendor_amd",
             "spdisplays_vram":"8 GB"}]}"#;
        let gpus = parse_system_profiler(json, 16 << 30);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].vendor, GpuVendor::Apple);
        assert!(gpus[0].unified_memory);
        assert_eq!(gpus[0].memory_bytes, Some(16 << 30));
        assert_eq!(gpus[1].vendor, GpuVendor::Amd);
        assert_eq!(gpus[1].memory_bytes, Some(8 << 30));
        assert!(parse_system_profiler("not json", 1).is_empty());
    }

    #[test]
    fn sysfs_cards() {
        let dir = std::env::temp_dir().join(format!("velollm-drm-{}", std::process::id()));
        let card = |n: &str, vendor: &str, extra: &[(&str, &str)]| {
            let dev = dir.join(n).join("device");
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
            std::fs::write(dev.join("device"), "0x744c\n").unwrap();
            for (f, v) in extra {
                std::fs::write(dev.join(f), v).unwrap();
            }
        };
        card("card0", "0x1002", &[("mem_info_vram_total", "25753026560\n")]);
        card("card1", "0x8086", &[]);
        card("card2", "0x10de", &[]);
        card("card3", "0x1af4", &[]);
        std::fs::create_dir_all(dir.join("card0-DP-1")).unwrap();
        let gpus = drm_gpus(&dir, true);
        assert_eq!(gpus.len(), 2, "{gpus:?}");
        assert_eq!(gpus[0].vendor, GpuVendor::Amd);
        assert_eq!(gpus[0].memory_bytes, Some(25_753_026_560));
        assert_eq!(gpus[0].name, "AMD GPU (PCI device 0x744c)");
        assert_eq!(gpus[1].vendor, GpuVendor::Intel);
        assert_eq!(gpus[1].memory_bytes, None);
        assert_eq!(drm_gpus(&dir, false).len(), 3, "NVIDIA by PCI id when nvidia-smi found none");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn detect_is_fast_and_sane() {
        let start = Instant::now();
        let hw = detect();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(hw.cpu.threads >= 1);
        assert!(hw.memory.total_bytes > 0);
        assert!(!hw.os.is_empty() && !hw.arch.is_empty());
    }
}
