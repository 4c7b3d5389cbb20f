//! Splitting of a fuzz input into header lines and a binary rest, so that seeds and crash files
//! stay readable and can be written by hand.

/// A cursor over a fuzz input that yields `\n`-terminated lines and then the remaining bytes.
pub struct Lines<'a> {
    remaining: &'a [u8],
}

impl<'a> Lines<'a> {
    /// Starts at the first byte of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Lines { remaining: data }
    }

    /// Returns the bytes up to the next `\n`, without it. A missing line is empty.
    pub fn next_line(&mut self) -> &'a [u8] {
        match self.remaining.iter().position(|&byte| byte == b'\n') {
            Some(end) => {
                let line = &self.remaining[..end];
                self.remaining = &self.remaining[end + 1..];
                line
            }
            None => std::mem::take(&mut self.remaining),
        }
    }

    /// Returns the next line as text, with invalid UTF-8 replaced by U+FFFD.
    pub fn next_text(&mut self) -> String {
        String::from_utf8_lossy(self.next_line()).into_owned()
    }

    /// Returns all bytes after the lines read so far.
    pub fn rest(self) -> &'a [u8] {
        self.remaining
    }
}
