//! Incremental newline-delimited JSON splitter for Ollama's native `/api/chat` stream.
//!
//! The provider actor feeds it body chunks as they arrive;
//! [`ollama`](crate::provider::ollama) parses each complete line it hands out. Lines are lent
//! straight out of the reused buffer, so a steady stream allocates nothing here.

use super::lines::LineBuffer;

/// Feed bytes with [`NdjsonDecoder::feed`], then take lines with
/// [`NdjsonDecoder::next_line`] until it returns `None`; call [`NdjsonDecoder::finish`] when
/// the body ends to get a last line that lacks its newline.
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    lines: LineBuffer,
}

impl NdjsonDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of the body; it may end anywhere, even inside a character.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.lines.feed(bytes);
    }

    pub fn finish(&mut self) {
        self.lines.finish();
    }

    /// The next non-blank line, without its `\n` or `\r\n`.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            let range = self.lines.next_line(false)?;
            let line = self.lines.line(range.clone());
            if !line.trim_ascii().is_empty() {
                let trimmed = line.strip_suffix(b"\r").map_or(range.len(), <[u8]>::len);
                return Some(&self.lines.line(range)[..trimmed]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut decoder = NdjsonDecoder::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            while let Some(line) = decoder.next_line() {
                lines.push(line.to_vec());
            }
        }
        decoder.finish();
        while let Some(line) = decoder.next_line() {
            lines.push(line.to_vec());
        }
        lines
    }

    #[test]
    fn lines_survive_any_split_and_blank_lines_are_skipped() {
        let body = "{\"a\":\"é\"}\r\n\n  \n{\"b\":2}\n{\"c\":3}".as_bytes();
        let expected: Vec<Vec<u8>> = vec![
            "{\"a\":\"é\"}".into(),
            b"{\"b\":2}".to_vec(),
            b"{\"c\":3}".to_vec(),
        ];
        for at in 0..=body.len() {
            assert_eq!(split(&[&body[..at], &body[at..]]), expected, "{at}");
        }
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(split(&bytewise), expected);
    }
}
