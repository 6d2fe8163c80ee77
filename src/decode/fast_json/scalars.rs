//! The scalar forms the fast decoder reads from a string or a number token: RFC 3339 times
//! and decimals, each exactly as arrow-json's parser reads the same text, or a [`Miss`].

use arrow::datatypes::TimeUnit;
use chrono::NaiveDate;

use super::{Miss, Parsed};

/// An RFC 3339 time in the forms arrow-json reads the same way: `YYYY-MM-DD`, or with
/// `[T t ]HH:MM:SS`, up to nine fraction digits, then `Z`, `z` or (when `naive_utc`) nothing.
pub(super) fn timestamp(s: &[u8], unit: TimeUnit, naive_utc: bool) -> Parsed<i64> {
    let digits = |range: std::ops::Range<usize>| -> Parsed<u32> {
        let mut v = 0u32;
        for &b in s.get(range).ok_or(Miss)? {
            if !b.is_ascii_digit() {
                return Err(Miss);
            }
            v = v * 10 + u32::from(b - b'0');
        }
        Ok(v)
    };
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return Err(Miss);
    }
    let date =
        NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?).ok_or(Miss)?;
    let (time, rest) = if s.len() == 10 {
        (date.and_hms_opt(0, 0, 0).ok_or(Miss)?, &s[10..])
    } else {
        if !matches!(s[10], b'T' | b't' | b' ')
            || s.get(13) != Some(&b':')
            || s.get(16) != Some(&b':')
        {
            return Err(Miss);
        }
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        if second >= 60 {
            return Err(Miss);
        }
        let mut end = 19;
        let mut nanos = 0u32;
        if s.get(19) == Some(&b'.') {
            let fraction = s[20..].iter().take_while(|b| b.is_ascii_digit()).count();
            if fraction == 0 || fraction > 9 {
                return Err(Miss);
            }
            nanos = digits(20..20 + fraction)? * 10u32.pow(9 - fraction as u32);
            end = 20 + fraction;
        }
        let time = date
            .and_hms_nano_opt(hour, minute, second, nanos)
            .ok_or(Miss)?;
        (time, &s[end..])
    };
    match rest {
        b"Z" | b"z" => {}
        b"" if naive_utc => {}
        _ => return Err(Miss),
    }
    let utc = time.and_utc();
    match unit {
        TimeUnit::Second => Ok(utc.timestamp()),
        TimeUnit::Millisecond => Ok(utc.timestamp_millis()),
        TimeUnit::Microsecond => Ok(utc.timestamp_micros()),
        TimeUnit::Nanosecond => utc.timestamp_nanos_opt().ok_or(Miss),
    }
}

/// `-?D+(.D+)?` as a decimal of `precision` and `scale`, as arrow's `parse_decimal` reads it,
/// when it needs no rounding (at most `scale` fraction digits) and fits.
pub(super) fn decimal(s: &[u8], precision: u8, scale: u8) -> Parsed<i128> {
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &s[s.len()..]),
    };
    let has_dot = int.len() < s.len();
    if int.is_empty()
        || (has_dot && frac.is_empty())
        || frac.len() > usize::from(scale)
        || !int.iter().chain(frac).all(u8::is_ascii_digit)
    {
        return Err(Miss);
    }
    // Digits as parse_decimal counts them: leading zeros of the integer part are not.
    let significant = int.iter().skip_while(|&&b| b == b'0').count() + frac.len();
    let digits = significant + (usize::from(scale) - frac.len());
    if digits > usize::from(precision) {
        return Err(Miss);
    }
    let mut v: i128 = 0;
    for &b in int.iter().chain(frac) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or(Miss)?;
    }
    for _ in frac.len()..usize::from(scale) {
        v = v.checked_mul(10).ok_or(Miss)?;
    }
    Ok(if negative { -v } else { v })
}
