//! The process's peak resident memory, for `bench` and `perplexity` reports.

/// Peak resident set size in bytes (VmHWM of /proc/self/status), or None where the kernel does
/// not report it (not Linux, or /proc not mounted).
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The VmHWM line of a /proc/PID/status text ("VmHWM:   123456 kB") in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next()? {
        "kB" => n.checked_mul(1024),
        _ => None,
    }
}

/// For JSON: the byte count, or the string "unknown".
pub fn json_value() -> serde_json::Value {
    peak_resident_bytes().map_or_else(|| "unknown".into(), |b| b.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\trmlx\nVmPeak:\t  999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS:\t 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t x kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t 12 MB\n"), None);
    }

    #[test]
    fn reads_this_process_on_linux() {
        if cfg!(target_os = "linux") {
            let b = peak_resident_bytes().expect("Linux reports VmHWM");
            assert!(b > 0);
        }
    }
}
