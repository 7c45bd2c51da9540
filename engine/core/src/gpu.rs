//! The GPU pool: which devices exist, and which stage holds which.
//!
//! Devices come from `GOURD_GPUS` when set (`0,1,3`, or empty for none),
//! otherwise from a probe the caller passes (libtorch, in a CUDA build), and
//! otherwise from `nvidia-smi -L`. Each device is held by at most one stage
//! at a time; a stage sees only its own devices through
//! `CUDA_VISIBLE_DEVICES`.

use std::process::Command;

#[derive(Debug, Clone)]
pub struct GpuPool {
    devices: Vec<String>,
    busy: Vec<bool>,
    /// Where the device list came from, for messages.
    pub source: &'static str,
}

impl GpuPool {
    pub fn discover(probe: Option<fn() -> usize>) -> GpuPool {
        if let Ok(list) = std::env::var("GOURD_GPUS") {
            let devices: Vec<String> =
                list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            return GpuPool::new(devices, "GOURD_GPUS");
        }
        if let Some(count) = probe.map(|probe| probe()).filter(|&n| n > 0) {
            return GpuPool::new((0..count).map(|i| i.to_string()).collect(), "libtorch");
        }
        let devices = Command::new("nvidia-smi")
            .arg("-L")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|line| line.starts_with("GPU "))
                    .enumerate()
                    .map(|(i, _)| i.to_string())
                    .collect()
            })
            .unwrap_or_default();
        GpuPool::new(devices, "nvidia-smi")
    }

    /// A device listed twice (`GOURD_GPUS=0,0`) is one device: two stages
    /// must never be given it at once.
    pub fn new(mut devices: Vec<String>, source: &'static str) -> GpuPool {
        let mut seen = std::collections::HashSet::new();
        devices.retain(|device| seen.insert(device.clone()));
        let busy = vec![false; devices.len()];
        GpuPool { devices, busy, source }
    }

    pub fn total(&self) -> usize {
        self.devices.len()
    }

    /// Takes `count` free devices, or none if not enough are free.
    pub fn take(&mut self, count: usize) -> Option<Vec<usize>> {
        let free: Vec<usize> = (0..self.busy.len()).filter(|&i| !self.busy[i]).take(count).collect();
        if free.len() < count {
            return None;
        }
        for &i in &free {
            self.busy[i] = true;
        }
        Some(free)
    }

    pub fn give_back(&mut self, held: &[usize]) {
        for &i in held {
            self.busy[i] = false;
        }
    }

    /// The `CUDA_VISIBLE_DEVICES` value for held devices.
    pub fn visible_devices(&self, held: &[usize]) -> String {
        held.iter().map(|&i| self.devices[i].as_str()).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_double_books() {
        let mut pool = GpuPool::new(vec!["0".into(), "1".into(), "2".into()], "test");
        let a = pool.take(2).unwrap();
        assert!(pool.take(2).is_none());
        let b = pool.take(1).unwrap();
        assert!(a.iter().all(|d| !b.contains(d)));
        pool.give_back(&a);
        let held = pool.take(2).unwrap();
        assert_eq!(pool.visible_devices(&held), "0,1");
    }

    #[test]
    fn a_device_listed_twice_is_one_device() {
        let mut pool = GpuPool::new(vec!["0".into(), "1".into(), "0".into()], "test");
        assert_eq!(pool.total(), 2);
        let held = pool.take(2).unwrap();
        assert_eq!(pool.visible_devices(&held), "0,1");
        assert!(pool.take(1).is_none());
    }
}
