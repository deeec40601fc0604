//! The vector instruction sets the kernels are compiled for, which of them this CPU has, and
//! the one chosen for this process.

use std::ffi::OsStr;
use std::sync::OnceLock;

/// An instruction set the dispatched kernels have a copy for, widest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512 (F, BW, VL) with AVX2 and FMA.
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// What the compilation target guarantees.
    Baseline,
}

impl Isa {
    /// Every set, widest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Baseline];

    /// Short name for reports: `avx512`, `avx2+fma` or `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2+fma",
            Isa::Baseline => "baseline",
        }
    }

    /// Whether this CPU can run the copies compiled for `self` (whatever
    /// `LABELSMOOTH_NO_SIMD` says).
    pub fn is_available(self) -> bool {
        // Each set includes the narrower ones, so "available" is "no wider than the widest".
        self.rank() >= Isa::widest().rank()
    }

    /// The widest set this CPU has, detected once.
    pub fn widest() -> Isa {
        static WIDEST: OnceLock<Isa> = OnceLock::new();
        *WIDEST.get_or_init(detect)
    }

    fn rank(self) -> u8 {
        match self {
            Isa::Avx512 => 0,
            Isa::Avx2 => 1,
            Isa::Baseline => 2,
        }
    }
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            return Isa::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// Whether a value of `LABELSMOOTH_NO_SIMD` asks for the baseline: `1`, `true`, `yes` or `on`
/// (any case, surrounding blanks ignored). Unset, empty, `0`, `false` and anything else keep
/// the vector copies.
fn no_simd_requested(value: Option<&OsStr>) -> bool {
    let Some(value) = value.and_then(OsStr::to_str) else {
        return false;
    };
    let v = value.trim();
    ["1", "true", "yes", "on"]
        .iter()
        .any(|yes| v.eq_ignore_ascii_case(yes))
}

/// The instruction set the dispatched kernels run with in this process: [`Isa::widest`], or
/// [`Isa::Baseline`] when the environment variable `LABELSMOOTH_NO_SIMD` is `1`, `true`, `yes`
/// or `on` (read once, at the first call).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        if no_simd_requested(std::env::var_os("LABELSMOOTH_NO_SIMD").as_deref()) {
            Isa::Baseline
        } else {
            Isa::widest()
        }
    })
}

/// The name of the instruction set the kernels run with ([`isa`]), for benchmarks and reports.
pub fn simd_level() -> &'static str {
    isa().name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_yes_disables_simd() {
        for yes in ["1", "true", "TRUE", "yes", "Yes", "on", " 1 "] {
            assert!(no_simd_requested(Some(OsStr::new(yes))), "{yes:?}");
        }
        for no in ["0", "false", "no", "off", "", "2", "enable"] {
            assert!(!no_simd_requested(Some(OsStr::new(no))), "{no:?}");
        }
        assert!(!no_simd_requested(None));
    }

    #[test]
    fn availability_is_nested() {
        assert!(Isa::Baseline.is_available());
        assert!(Isa::widest().is_available());
        if Isa::Avx512.is_available() {
            assert!(Isa::Avx2.is_available());
        }
        assert!(isa().is_available());
        assert_eq!(simd_level(), isa().name());
    }
}
