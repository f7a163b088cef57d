//! Scalar math that generated code calls element by element where it has
//! no inline form: `f64` in, `f64` out, correctly rounded as libm is.
//!
//! [`SCALAR_FNS`] is the one list: the lowering declares each function from
//! it and the JIT registers each address from it.

/// One scalar function: its link name, number of `f64` parameters, and
/// address in this process.
#[derive(Copy, Clone, Debug)]
pub struct ScalarFn {
    pub name: &'static str,
    pub arity: usize,
    pub addr: *const u8,
}

// SAFETY (for `Sync`): the addresses are of functions, never written through.
unsafe impl Sync for ScalarFn {}

macro_rules! scalar_fns {
    ($( $name:ident ($($p:ident),*) = $body:expr; )*) => {
        $(
            /// Scalar math for generated code (see the module doc).
            #[no_mangle]
            pub extern "C" fn $name($($p: f64),*) -> f64 {
                $body
            }
        )*

        /// Every scalar function, by link name.
        pub const SCALAR_FNS: &[ScalarFn] = &[
            $(ScalarFn {
                name: stringify!($name),
                arity: [$(stringify!($p)),*].len(),
                addr: $name as *const u8,
            },)*
        ];
    };
}

scalar_fns! {
    torchlift_exp(x) = x.exp();
    torchlift_expm1(x) = x.exp_m1();
    torchlift_log(x) = x.ln();
    torchlift_log1p(x) = x.ln_1p();
    torchlift_log2(x) = x.log2();
    torchlift_tanh(x) = x.tanh();
    torchlift_sigmoid(x) = 1.0 / (1.0 + (-x).exp());
    torchlift_erf(x) = libm::erf(x);
    torchlift_sin(x) = x.sin();
    torchlift_cos(x) = x.cos();
    torchlift_tan(x) = x.tan();
    torchlift_fmod(x, y) = x % y;
    torchlift_remainder(x, y) = remainder(x, y);
    torchlift_floor_divide(x, y) = floor_divide(x, y);
    torchlift_pow(x, y) = x.powf(y);
    torchlift_atan2(y, x) = y.atan2(x);
    torchlift_round_f16(x) = f16_round(x as f32) as f64;
}

/// Python's `x % y` for floats (torch `remainder`): the result has the
/// divisor's sign.
pub fn remainder(x: f64, y: f64) -> f64 {
    let m = x % y;
    if m != 0.0 && ((m < 0.0) != (y < 0.0)) {
        m + y
    } else {
        m
    }
}

/// Python's `x // y` for floats, as torch's `div_floor_floating` computes
/// it: from the exact remainder, so that `1.0 // 0.1` is 9 as in Python.
pub fn floor_divide(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        return x / y;
    }
    let m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 && ((y < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut fl = div.floor();
        if div - fl > 0.5 {
            fl += 1.0;
        }
        fl
    } else {
        0.0f64.copysign(x / y)
    }
}

/// `x` rounded to the nearest IEEE half-precision value (ties to even),
/// returned as `f32`.
pub fn f16_round(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// The IEEE half-precision bits nearest to `x` (ties to even).
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let mut mant = b & 0x7f_ffff;
    if exp == 255 {
        let nan = if mant != 0 {
            0x200 | (mant >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        mant |= 0x80_0000;
        let shift = (14 - e) as u32;
        let mut h = mant >> shift;
        let half = 1u32 << (shift - 1);
        let rem = mant & ((1u32 << shift) - 1);
        if rem > half || (rem == half && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let mut h = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

/// The value of half-precision bits.
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if exp == 0 {
        let v = mant as f32 * (1.0 / 16_777_216.0);
        return if sign != 0 { -v } else { v };
    }
    if exp == 31 {
        return f32::from_bits(sign | 0x7f80_0000 | (mant << 13));
    }
    f32::from_bits(sign | ((exp + 112) << 23) | (mant << 13))
}

/// `f32` to the bits of the nearest `f16`, for generated code (widened to
/// an `i32`: the code stores the low 16 bits).
#[no_mangle]
pub extern "C" fn torchlift_f32_to_f16_bits(x: f32) -> i32 {
    f32_to_f16(x) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scalar_fn_is_listed_once() {
        let mut names: Vec<_> = SCALAR_FNS.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SCALAR_FNS.len());
        assert!(SCALAR_FNS.iter().all(|f| f.arity == 1 || f.arity == 2));
    }

    #[test]
    fn half_rounding_round_trips_every_half() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_round(x).is_nan());
            } else {
                assert_eq!(f32_to_f16(x), h, "bits {h:#x}");
            }
        }
        assert_eq!(f16_round(1.0 + 1.0 / 4096.0), 1.0);
        assert_eq!(f16_round(65520.0), f32::INFINITY);
    }
}
