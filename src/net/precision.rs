//! Where the network runs ([`Compute`], `--device`) and the numeric precision of its
//! convolutions ([`Precision`], `--precision fp32|tf32|bf16`): one option for every device, and
//! what each device makes of it.
//!
//! Gram matrices, losses and the optimiser always run in f32 (sums of squares in f64); the
//! precision only says how the convolutions multiply:
//! - `fp32`: f32 operands and products, the reference;
//! - `tf32`: f32 storage, products with a 10-bit mantissa on GPUs that have TF32 (NVIDIA Ampere
//!   and later); on a CPU this is fp32;
//! - `bf16`: operands rounded to bf16 (8-bit mantissa), products accumulated in f32. On a CPU
//!   it needs a bf16 kernel ([`crate::net::cpu::bf16::Kernel::detect`]: AMX or AVX-512 BF16) and is
//!   fp32 where there is none.
//!
//! Defaults: the CPU uses bf16 where it has AMX (the quality gate in docs/performance.md: final J within
//! 2% of fp32's; twice as fast there), fp32 elsewhere — also where AVX-512 BF16 is the only
//! bf16 kernel: a direct convolution in bf16 does 4× the multiply-adds of fp32's Winograd at
//! (on AMD Zen 4) twice the rate, so it is not expected to be faster, and it is unmeasured on
//! such a CPU (`--precision bf16` runs it). CUDA uses tf32, PyTorch's default for convolutions
//! (its matrix products, our Gram matrices, stay strict f32; see [`crate::net::device::cudnn`]): TF32 keeps
//! 10 mantissa bits, more than bf16's 8, whose quality gate held within 0.04%. `cpu-reference`
//! uses fp32, and runs bf16 when asked (candle's bf16 ops: the GPU's bf16 path, tested on the
//! CPU).

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};
use crate::net::cpu::bf16;

/// Where the network runs, and with which operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// The CPU, on this crate's kernels ([`crate::net::cpu::layers`]): the default, and the fastest CPU path.
    #[default]
    Cpu,
    /// The CPU, on candle's own ops (`conv2d`, reductions): the reference path the kernels are
    /// tested against; several times slower.
    CpuReference,
    /// A CUDA GPU (by ordinal) on candle's ops; needs a build with `--features cuda`.
    Cuda(usize),
}

impl Compute {
    /// The candle device, or a clear error when this build or machine cannot provide it.
    pub fn device(&self) -> Result<Device> {
        match *self {
            Compute::Cpu | Compute::CpuReference => Ok(Device::Cpu),
            Compute::Cuda(_) if !cfg!(feature = "cuda") => {
                Err(Error::Settings(format!("{self}: this build has no CUDA support (build with --features cuda)")))
            }
            Compute::Cuda(ordinal) => {
                Device::new_cuda(ordinal).map_err(|e| Error::Settings(format!("{self}: no usable CUDA GPU ({e})")))
            }
        }
    }

    /// Whether the network runs on this crate's CPU kernels.
    pub fn uses_crate_kernels(&self) -> bool {
        *self == Compute::Cpu
    }
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compute::Cpu => write!(f, "cpu"),
            Compute::CpuReference => write!(f, "cpu-reference"),
            Compute::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl FromStr for Compute {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("unknown device '{s}' (expected cpu, cpu-reference, cuda or cuda:N)");
        match s.trim() {
            "cpu" => Ok(Compute::Cpu),
            "cpu-reference" => Ok(Compute::CpuReference),
            "cuda" => Ok(Compute::Cuda(0)),
            other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Compute::Cuda).ok_or_else(bad),
        }
    }
}

impl serde::Serialize for Compute {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How the convolutions multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[value(alias = "f32")]
    Fp32,
    Tf32,
    Bf16,
}

impl Precision {
    /// The precision a device runs when none is asked for.
    pub fn default_for(compute: Compute) -> Precision {
        match compute {
            Compute::Cpu if bf16::Kernel::detect() == Some(bf16::Kernel::Amx) => Precision::Bf16,
            Compute::Cuda(_) => Precision::Tf32,
            _ => Precision::Fp32,
        }
    }

    /// What the device makes of a requested precision (`None`: its default): tf32 is fp32 on a
    /// CPU, bf16 is fp32 on a CPU without a bf16 kernel.
    pub fn effective(requested: Option<Precision>, compute: Compute) -> Precision {
        let requested = requested.unwrap_or_else(|| Precision::default_for(compute));
        match (compute, requested) {
            (Compute::Cuda(_), p) => p,
            (Compute::Cpu, Precision::Bf16) if bf16::Kernel::detect().is_some() => Precision::Bf16,
            (Compute::CpuReference, Precision::Bf16) => Precision::Bf16,
            _ => Precision::Fp32,
        }
    }

    /// How far (in 0..255 pixel units) a step must move some pixel for the change in the
    /// gradient to be more than the precision's rounding: 0 for fp32 and tf32; 3 for bf16, where
    /// L-BFGS's usual first step (Torch's min(1, 1/‖g‖₁), a 1e-5-pixel move) changed J's bf16
    /// gradient by noise alone and cost warm video frames 1–3% of final J. Measured on the sample
    /// (256×192, warm frames of 10 iterations): J within 0.6% of fp32's at 3, 1% at 0.1 and 1.
    pub fn gradient_resolution(self) -> f64 {
        match self {
            Precision::Bf16 => 3.0,
            Precision::Fp32 | Precision::Tf32 => 0.0,
        }
    }

    /// The bf16 kernel the CPU convolutions use at this (effective) precision.
    pub fn cpu_bf16_kernel(self) -> Option<bf16::Kernel> {
        match self {
            Precision::Bf16 => bf16::Kernel::detect(),
            _ => None,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "fp32" | "f32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision '{other}' (expected fp32, tf32 or bf16)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_without_bf16_and_the_reference_device_run_fp32() {
        assert_eq!(Precision::effective(Some(Precision::Tf32), Compute::Cpu), Precision::Fp32);
        assert_eq!(Precision::effective(Some(Precision::Bf16), Compute::CpuReference), Precision::Bf16);
        assert_eq!(Precision::effective(Some(Precision::Tf32), Compute::CpuReference), Precision::Fp32);
        assert_eq!(Precision::effective(None, Compute::Cuda(0)), Precision::Tf32);
        assert_eq!(Precision::effective(None, Compute::CpuReference), Precision::Fp32);
        assert_eq!(Precision::effective(Some(Precision::Fp32), Compute::Cpu), Precision::Fp32);
        assert_eq!(Precision::effective(Some(Precision::Tf32), Compute::Cuda(0)), Precision::Tf32);
        let bf16_on_cpu = Precision::effective(Some(Precision::Bf16), Compute::Cpu);
        assert_eq!(bf16_on_cpu == Precision::Bf16, bf16::Kernel::detect().is_some());
        let amx = bf16::Kernel::detect() == Some(bf16::Kernel::Amx);
        assert_eq!(Precision::effective(None, Compute::Cpu) == Precision::Bf16, amx);
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp16".parse::<Precision>().unwrap_err().contains("fp32, tf32 or bf16"));
    }
}
