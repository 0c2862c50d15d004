//! Newline-delimited framing for the WebTransport control stream: splits a byte stream
//! into lines of bounded length, without copying a line that arrives in one chunk. It
//! knows nothing of JSON or sessions.

/// What the framer found in the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without `\n` (and without a trailing `\r`).
    Text(&'a [u8]),
    /// A line longer than the limit; its bytes up to the next newline are skipped.
    TooLong,
}

/// Splits a byte stream into newline-terminated lines of bounded length.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max` bytes (without the newline).
    pub fn new(max: usize) -> Self {
        LineFramer {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Feeds bytes; calls `f` for every complete line or over-long line.
    pub fn push(&mut self, mut data: &[u8], mut f: impl FnMut(Line<'_>)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let part = &data[..i];
                    data = &data[i + 1..];
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    if self.buf.len() + part.len() > self.max {
                        self.buf.clear();
                        f(Line::TooLong);
                        continue;
                    }
                    if self.buf.is_empty() {
                        f(Line::Text(strip_cr(part)));
                    } else {
                        self.buf.extend_from_slice(part);
                        f(Line::Text(strip_cr(&self.buf)));
                        self.buf.clear();
                    }
                }
                None => {
                    if !self.skipping {
                        if self.buf.len() + data.len() > self.max {
                            self.buf.clear();
                            self.skipping = true;
                            f(Line::TooLong);
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    return;
                }
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(framer: &mut LineFramer, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for c in chunks {
            framer.push(c, |l| {
                out.push(match l {
                    Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    Line::TooLong => "<too long>".into(),
                })
            });
        }
        out
    }

    #[test]
    fn splits_lines_across_chunks_and_strips_cr() {
        let mut f = LineFramer::new(10);
        assert_eq!(
            lines(&mut f, &[b"ab", b"c\r\nde\n", b"\n", b"f"]),
            ["abc", "de", ""]
        );
        assert_eq!(lines(&mut f, &[b"g\n"]), ["fg"]);
    }

    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        let mut f = LineFramer::new(4);
        assert_eq!(
            lines(&mut f, &[b"12345", b"678", b"9\nok\n"]),
            ["<too long>", "ok"]
        );
        assert_eq!(lines(&mut f, &[b"123456\nyes\n"]), ["<too long>", "yes"]);
        assert_eq!(lines(&mut f, &[b"1234\n"]), ["1234"]);
    }
}
