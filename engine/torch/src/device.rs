//! Where a step computes: the GPU gourd assigned to the stage, or the CPU.
//!
//! A stage on `executor = 'cuda` gets its devices through
//! `CUDA_VISIBLE_DEVICES`, so inside the step its first device is always
//! `cuda:0`. A 'cuda stage that fell back to the CPU sees an empty list.

use tch::Device;

use crate::StepError;

pub fn cuda_device_count() -> usize {
    tch::Cuda::device_count().max(0) as usize
}

pub fn for_stage() -> Result<Device, StepError> {
    let executor = std::env::var("GOURD_EXECUTOR").unwrap_or_default();
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
    if executor != "cuda" || visible.trim().is_empty() {
        return Ok(Device::Cpu);
    }
    if !tch::Cuda::is_available() {
        return Err(StepError::Device(format!(
            "the stage runs on 'cuda (devices {visible}) but libtorch sees no CUDA device: \\
             this gourd may be built without the `cuda` feature, or libtorch's CUDA libraries are missing"
        )));
    }
    Ok(Device::Cuda(0))
}
