//! The byte buffer under both stream framings ([`super::sse`] and [`super::ndjson`]): it
//! takes network chunks that may end anywhere and hands out complete lines.
//!
//! Lines stay bytes until they are whole, so a chunk ending inside a multi-byte UTF-8
//! character or between `\r` and `\n` is harmless. The buffer is reused across chunks.

use std::ops::Range;

#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out.
    start: usize,
    /// `buf[start..scanned]` holds no terminator, so a long line is not rescanned per chunk.
    scanned: usize,
    /// The last line ended with `\r` at the end of the buffer; if the next byte is `\n` it
    /// belongs to that terminator.
    skip_lf: bool,
    /// The body has ended: the unterminated tail counts as a last line.
    finished: bool,
}

impl LineBuffer {
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        // Compact only once the consumed bytes outweigh the pending ones, so a long line
        // arriving in many small chunks is not moved once per chunk.
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// The bytes not yet handed out as lines.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Skips `count` pending bytes (used for a byte-order mark).
    pub(crate) fn skip(&mut self, count: usize) {
        self.start = (self.start + count).min(self.buf.len());
        self.scanned = self.scanned.max(self.start);
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next complete line (without its terminator) as a range for [`Self::line`].
    /// `\n` always ends a line; `\r` and `\r\n` too when `cr_ends_lines` (SSE allows all
    /// three, NDJSON only `\n`, with a `\r` before it left for the caller to trim).
    pub(crate) fn next_line(&mut self, cr_ends_lines: bool) -> Option<Range<usize>> {
        if self.skip_lf {
            match self.buf.get(self.start) {
                Some(b'\n') => self.skip(1),
                Some(_) => {}
                None if !self.finished => return None,
                None => {}
            }
            self.skip_lf = false;
        }
        let from = self.scanned.max(self.start);
        let found = self.buf[from..]
            .iter()
            .position(|&b| b == b'\n' || (cr_ends_lines && b == b'\r'));
        match found {
            Some(offset) => {
                let end = from + offset;
                let mut next = end + 1;
                if self.buf[end] == b'\r' {
                    match self.buf.get(next) {
                        Some(b'\n') => next += 1,
                        Some(_) => {}
                        None => self.skip_lf = true,
                    }
                }
                let line = self.start..end;
                self.start = next;
                self.scanned = next;
                Some(line)
            }
            None => {
                self.scanned = self.buf.len();
                if self.finished && self.start < self.buf.len() {
                    let line = self.start..self.buf.len();
                    self.start = self.buf.len();
                    Some(line)
                } else {
                    None
                }
            }
        }
    }

    pub(crate) fn line(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]], cr_ends_lines: bool) -> Vec<String> {
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.feed(chunk);
            while let Some(range) = buffer.next_line(cr_ends_lines) {
                out.push(String::from_utf8(buffer.line(range).to_vec()).unwrap());
            }
        }
        buffer.finish();
        while let Some(range) = buffer.next_line(cr_ends_lines) {
            out.push(String::from_utf8(buffer.line(range).to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn all_terminators_split_lines_even_across_chunks() {
        let expected = ["a", "b", "c", "", "d"];
        assert_eq!(lines(&[b"a\nb\r\nc\r\rd"], true), expected);
        assert_eq!(lines(&[b"a\nb\r", b"\nc\r", b"\r", b"d"], true), expected);
        assert_eq!(lines(&[b"a\nb\r", b"", b"\nc\r\rd"], true), expected);
    }

    #[test]
    fn a_bare_cr_is_data_when_only_newlines_end_lines() {
        assert_eq!(lines(&[b"a\r", b"\nb\rc"], false), ["a\r", "b\rc"]);
    }

    #[test]
    fn a_trailing_cr_at_the_end_of_the_body_ends_the_last_line() {
        assert_eq!(lines(&[b"a\r"], true), ["a"]);
    }
}
