//! [`simd_dispatch!`](crate::simd_dispatch): one kernel body compiled for each [`Isa`](crate::Isa),
//! the copy for this process chosen at run time.

/// Defines a kernel compiled once per instruction set, and the functions that call it.
///
/// ```text
/// simd_dispatch! {
///     /// Docs of the kernel.
///     pub fn name(arg: Type, ...) -> Ret => body, on name_on
/// }
/// simd_dispatch! {
///     pub fn name(arg: Type, ...) -> Ret => body, baseline plain_body, on name_on
/// }
/// ```
///
/// `body` is an `#[inline(always)]` function with the same arguments; it is compiled into a
/// copy with AVX-512 enabled, one with AVX2 + FMA and the baseline, so that its loops vectorize
/// for each. `baseline plain_body` runs `plain_body` on the baseline instead (kernels that use
/// `mul_add` only where the CPU fuses it, since without FMA it would be a library call).
///
/// Two functions come out:
/// - `name(args) -> Ret` runs the copy for [`isa`](crate::isa()) (the widest this CPU has,
///   unless `LABELSMOOTH_NO_SIMD` asks for the baseline);
/// - `name_on(isa, args) -> Option<Ret>` runs the copy for `isa`, or returns `None` when this
///   CPU lacks `isa`: tests compare the copies with it.
#[macro_export]
macro_rules! simd_dispatch {
    (@emit $(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty
        => $imp:path, baseline $base:path, on $on:ident) => {
        #[doc = concat!(
            "[`", stringify!($name), "`] on the copy compiled for `isa`; `None` when this CPU ",
            "lacks `isa`."
        )]
        #[allow(clippy::too_many_arguments, clippy::unused_unit)]
        #[inline]
        $vis fn $on(isa: $crate::Isa, $($arg: $ty),*) -> ::core::option::Option<$ret> {
            if !isa.is_available() {
                return ::core::option::Option::None;
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::Isa::Avx512 => {
                    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                    #[allow(clippy::too_many_arguments, clippy::unused_unit)]
                    fn copy($($arg: $ty),*) -> $ret {
                        $imp($($arg),*)
                    }
                    // SAFETY: `is_available` checked above that this CPU has these instructions.
                    ::core::option::Option::Some(unsafe { copy($($arg),*) })
                }
                #[cfg(target_arch = "x86_64")]
                $crate::Isa::Avx2 => {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments, clippy::unused_unit)]
                    fn copy($($arg: $ty),*) -> $ret {
                        $imp($($arg),*)
                    }
                    // SAFETY: `is_available` checked above that this CPU has these instructions.
                    ::core::option::Option::Some(unsafe { copy($($arg),*) })
                }
                $crate::Isa::Baseline => ::core::option::Option::Some($base($($arg),*)),
                #[cfg(not(target_arch = "x86_64"))]
                _ => ::core::option::Option::None,
            }
        }

        $(#[$m])*
        #[allow(clippy::too_many_arguments, clippy::unused_unit)]
        $vis fn $name($($arg: $ty),*) -> $ret {
            match $on($crate::isa(), $($arg),*) {
                ::core::option::Option::Some(r) => r,
                ::core::option::Option::None => {
                    unreachable!("isa() only returns a set this CPU has")
                }
            }
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?
        => $imp:path, on $on:ident) => {
        $crate::simd_dispatch! {
            $(#[$m])* $vis fn $name($($arg: $ty),*) $(-> $ret)? => $imp, baseline $imp, on $on
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?)
        => $imp:path, baseline $base:path, on $on:ident) => {
        $crate::simd_dispatch! {
            @emit $(#[$m])* $vis fn $name($($arg: $ty),*) -> () => $imp, baseline $base, on $on
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty
        => $imp:path, baseline $base:path, on $on:ident) => {
        $crate::simd_dispatch! {
            @emit $(#[$m])* $vis fn $name($($arg: $ty),*) -> $ret => $imp, baseline $base, on $on
        }
    };
}
