//! A position in one record and the strict JSON grammar the fast decoder accepts: strings
//! (unescaped), numbers, literals, and values skipped for unknown fields.
//!
//! Invariant: every reader either consumes exactly one well-formed token (or value) or returns
//! [`Miss`]; none accepts a form outside JSON's grammar, except raw control characters inside
//! strings, which arrow-json keeps as they are too.

use super::{Miss, Parsed};

/// Deepest nesting of a value skipped for an unknown field (deeper: a miss).
const MAX_SKIP_DEPTH: usize = 64;

/// The first `"` or `\\` in `s`: eight bytes at a time for the first 64 (keys and most values
/// are short, and a SIMD search costs more to set up than it saves on them), then memchr.
#[inline]
pub(super) fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while at + 8 <= s.len().min(64) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[at..at + 8]);
        let x = u64::from_le_bytes(word);
        let hits =
            zero_byte(x ^ (ONES * u64::from(b'"'))) | zero_byte(x ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    if at >= 64 {
        return memchr::memchr2(b'"', b'\\', &s[at..]).map(|i| at + i);
    }
    s[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|i| at + i)
}

/// A position in one record.
pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub(super) fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        if b.is_some() {
            self.i += 1;
        }
        b
    }

    #[inline]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    pub(super) fn expect(&mut self, b: u8) -> Parsed {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(Miss)
        }
    }

    pub(super) fn literal(&mut self, word: &[u8]) -> Parsed {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Miss)
        }
    }

    /// A string without escapes (keys, times, decimals), without its quotes.
    pub(super) fn plain_string(&mut self) -> Parsed<&'a [u8]> {
        self.expect(b'"')?;
        let rest = &self.b[self.i..];
        let end = quote_or_backslash(rest).ok_or(Miss)?;
        if rest[end] != b'"' {
            return Err(Miss);
        }
        self.i += end + 1;
        Ok(&rest[..end])
    }

    /// A string, unescaped, appended to `out`.
    pub(super) fn string_into(&mut self, out: &mut Vec<u8>) -> Parsed {
        self.string(|piece| out.extend_from_slice(piece))
    }

    /// A string, checked and passed over (an unknown field's): nothing is copied.
    fn skip_string(&mut self) -> Parsed {
        self.string(|_| {})
    }

    /// A string, handed to `piece` unescaped, a run of plain bytes or one escape at a time.
    fn string(&mut self, mut piece: impl FnMut(&[u8])) -> Parsed {
        self.expect(b'"')?;
        loop {
            let rest = &self.b[self.i..];
            let end = quote_or_backslash(rest).ok_or(Miss)?;
            piece(&rest[..end]);
            self.i += end + 1;
            if rest[end] == b'"' {
                return Ok(());
            }
            let c = self.escape()?;
            piece(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Parsed<char> {
        let c = match self.next().ok_or(Miss)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let high = self.hex4()?;
                let c = match high {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(Miss);
                        }
                        let n = ((u32::from(high) - 0xD800) << 10) | (u32::from(low) - 0xDC00);
                        char::from_u32(n + 0x1_0000).ok_or(Miss)?
                    }
                    0xDC00..=0xDFFF => return Err(Miss),
                    _ => char::from_u32(u32::from(high)).ok_or(Miss)?,
                };
                return Ok(c);
            }
            _ => return Err(Miss),
        };
        Ok(char::from(c))
    }

    pub(super) fn hex4(&mut self) -> Parsed<u16> {
        let digits = self.b.get(self.i..self.i + 4).ok_or(Miss)?;
        let mut v = 0u16;
        for &d in digits {
            v = (v << 4) | char::from(d).to_digit(16).ok_or(Miss)? as u16;
        }
        self.i += 4;
        Ok(v)
    }

    /// An integer in JSON's grammar (`-?(0|[1-9][0-9]*)`, no fraction or exponent) that fits.
    pub(super) fn integer(&mut self) -> Parsed<i64> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let digits_start = self.i;
        let mut v: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            let d = i64::from(d - b'0');
            v = v
                .checked_mul(10)
                .and_then(|v| {
                    if negative {
                        v.checked_sub(d)
                    } else {
                        v.checked_add(d)
                    }
                })
                .ok_or(Miss)?;
            self.i += 1;
        }
        let len = self.i - digits_start;
        if len == 0 || (len > 1 && self.b[digits_start] == b'0') {
            return Err(Miss);
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'+' | b'-')) {
            self.i = start;
            return Err(Miss);
        }
        Ok(v)
    }

    /// A number in JSON's grammar, as its text.
    pub(super) fn float_token(&mut self) -> Parsed<&'a str> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int = self.digits();
        if int == 0 || (int > 1 && self.b[self.i - int] == b'0') {
            return Err(Miss);
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Miss);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Miss);
            }
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'+' | b'-')) {
            return Err(Miss);
        }
        // ASCII only, so always UTF-8.
        std::str::from_utf8(&self.b[start..self.i]).map_err(|_| Miss)
    }

    pub(super) fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// Skips any JSON value (an unknown field's), checking its syntax.
    pub(super) fn skip_value(&mut self, depth: usize) -> Parsed {
        if depth > MAX_SKIP_DEPTH {
            return Err(Miss);
        }
        match self.peek().ok_or(Miss)? {
            b'"' => self.skip_string(),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.float_token().map(drop),
            open @ (b'[' | b'{') => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(Miss);
                        }
                        self.skip_value(depth + 1)?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => self.ws(),
                        Some(b) if b == close => return Ok(()),
                        _ => return Err(Miss),
                    }
                }
            }
            _ => Err(Miss),
        }
    }
}

/// The byte ranges of the values of `names` among the members of `b`, which must be one
/// JSON object in the strict grammar above, with keys free of escapes; `None` otherwise (the
/// caller falls back to a full parser). A name given twice in `b` keeps its last value, as
/// serde_json and arrow-json do.
pub fn member_spans<const N: usize>(
    b: &[u8],
    names: [&str; N],
) -> Option<[Option<std::ops::Range<usize>>; N]> {
    let mut spans = [const { None }; N];
    let mut c = Cursor { b, i: 0 };
    c.ws();
    c.expect(b'{').ok()?;
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            let key = c.plain_string().ok()?;
            c.ws();
            c.expect(b':').ok()?;
            c.ws();
            let start = c.i;
            c.skip_value(0).ok()?;
            if let Some(n) = names.iter().position(|n| n.as_bytes() == key) {
                spans[n] = Some(start..c.i);
            }
            c.ws();
            match c.next() {
                Some(b',') => c.ws(),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == b.len()).then_some(spans)
}
