//! The text encoding of an exported file, and a reader that decodes it to
//! UTF-8 and says where it cannot.
//!
//! What CRMs and spreadsheets write: UTF-8 with or without a BOM (CRM
//! exports, Excel's "CSV UTF-8"), UTF-16 with a BOM (Excel's "Unicode text",
//! Meta's Lead Ads download), and the Windows code page of the machine
//! without any marker (Excel's "CSV (Comma delimited)" on a Western
//! European or American Windows: Windows-1252). With [`TextEncoding::Auto`]
//! a file is read by its BOM; without one, as UTF-16 when every other byte
//! of its start is NUL, as UTF-8 when all of it is valid UTF-8, and as
//! Windows-1252 otherwise. Encodings are `encoding_rs`'s (the WHATWG
//! Encoding Standard's labels and tables); nothing here maps bytes itself.

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use std::fmt;
use std::io::{self, Read};

/// How a file's bytes become text (`import.encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    /// By BOM, else UTF-16 by its NUL bytes, else UTF-8 when valid, else
    /// Windows-1252.
    #[default]
    Auto,
    /// This encoding (a BOM, when present, still wins: it cannot lie).
    Fixed(&'static Encoding),
}

impl TextEncoding {
    /// `auto` or any WHATWG label (`utf-8`, `utf-16le`, `windows-1252`,
    /// `latin1`, `iso-8859-15`, `shift_jis`, ...), case-insensitive.
    pub fn from_label(label: &str) -> Option<TextEncoding> {
        let l = label.trim();
        if l.eq_ignore_ascii_case("auto") {
            return Some(TextEncoding::Auto);
        }
        Encoding::for_label(l.as_bytes()).map(TextEncoding::Fixed)
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextEncoding::Auto => f.write_str("auto"),
            TextEncoding::Fixed(e) => f.write_str(e.name()),
        }
    }
}

/// Why the encoding was chosen (shown to the user once per file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A byte-order mark said so.
    Bom,
    /// `import.encoding` said so.
    Configured,
    /// No BOM and every other byte of the start is NUL.
    NulBytes,
    /// No BOM and the bytes are valid UTF-8.
    ValidUtf8,
    /// No BOM and not valid UTF-8 (at this byte offset): Windows-1252.
    NotUtf8(u64),
}

/// Bytes that are not text in the file's encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: not valid {encoding}{why}; set import.encoding to the file's encoding (\"windows-1252\" for Excel's \"CSV (Comma delimited)\" on Windows, \"utf-16le\", \"iso-8859-15\", ...) or save it again as CSV UTF-8")]
pub struct DecodeError {
    /// Offset of the first bad byte from the start of the file.
    pub offset: u64,
    /// The encoding the file was read as.
    pub encoding: &'static str,
    /// Why that encoding was used.
    pub why: &'static str,
}

/// The encoding of a file whose first bytes are `head`. `rest_is_utf8`
/// is asked only for a file without BOM in `Auto` mode: whether the whole
/// file is valid UTF-8 (`Ok(())`), or the offset of its first bad byte.
pub(crate) fn choose(
    head: &[u8],
    wanted: TextEncoding,
    rest_is_utf8: impl FnOnce() -> io::Result<Result<(), u64>>,
) -> io::Result<(&'static Encoding, Detected)> {
    if let Some((e, _)) = Encoding::for_bom(head) {
        return Ok((e, Detected::Bom));
    }
    match wanted {
        TextEncoding::Fixed(e) => Ok((e, Detected::Configured)),
        TextEncoding::Auto => {
            if let Some(e) = utf16_by_nuls(head) {
                return Ok((e, Detected::NulBytes));
            }
            Ok(match rest_is_utf8()? {
                Ok(()) => (UTF_8, Detected::ValidUtf8),
                Err(at) => (WINDOWS_1252, Detected::NotUtf8(at)),
            })
        }
    }
}

/// UTF-16 without a BOM: a text file of mostly ASCII has a NUL in every
/// other byte. Looks at the first 512 bytes.
fn utf16_by_nuls(head: &[u8]) -> Option<&'static Encoding> {
    let h = &head[..head.len().min(512) & !1];
    if h.len() < 8 {
        return None;
    }
    let pairs = h.len() / 2;
    let even_nul = h.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd_nul = h.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    if odd_nul * 10 >= pairs * 9 && even_nul == 0 {
        Some(UTF_16LE)
    } else if even_nul * 10 >= pairs * 9 && odd_nul == 0 {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Whether everything `r` yields is valid UTF-8: `Ok(())`, or the offset of
/// the first byte that is not.
pub(crate) fn utf8_check(mut r: impl Read) -> io::Result<Result<(), u64>> {
    let mut buf = vec![0u8; 256 * 1024];
    // Bytes of a sequence cut by the end of the previous chunk.
    let mut carry = 0usize;
    let mut offset = 0u64;
    loop {
        let n = r.read(&mut buf[carry..])?;
        let end = carry + n;
        match std::str::from_utf8(&buf[..end]) {
            Ok(_) if n == 0 => return Ok(Ok(())),
            Ok(_) => {
                offset += end as u64;
                carry = 0;
            }
            Err(e) => {
                let good = e.valid_up_to();
                if e.error_len().is_some() || n == 0 {
                    return Ok(Err(offset + good as u64));
                }
                // An incomplete sequence at the end: keep it for the next read.
                offset += good as u64;
                buf.copy_within(good..end, 0);
                carry = end - good;
            }
        }
    }
}

/// Decodes `inner` (whose BOM, if any, is still in it) to UTF-8, failing
/// with a [`DecodeError`] (as `io::ErrorKind::InvalidData`) at the first
/// byte that is not text in the encoding.
pub(crate) struct DecodeReader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    encoding: &'static Encoding,
    why: &'static str,
    input: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    /// Input bytes consumed before `input[start]`.
    consumed: u64,
    output: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    done: bool,
}

impl<R: Read> DecodeReader<R> {
    pub(crate) fn new(inner: R, encoding: &'static Encoding, detected: Detected) -> Self {
        DecodeReader {
            inner,
            // Removes a BOM of this encoding; bytes are never guessed again.
            decoder: encoding.new_decoder_with_bom_removal(),
            encoding,
            why: match detected {
                Detected::Bom => " (its byte-order mark says so)",
                Detected::Configured => " (import.encoding)",
                Detected::NulBytes => " (guessed from its NUL bytes)",
                Detected::ValidUtf8 | Detected::NotUtf8(_) => "",
            },
            input: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            consumed: 0,
            output: vec![0; 64 * 1024].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            done: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end < self.input.len() {
            match self.inner.read(&mut self.input[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Decodes more into `output`; false at the end.
    fn decode_more(&mut self) -> io::Result<bool> {
        loop {
            if self.done {
                return Ok(false);
            }
            if self.start == self.end || self.end < self.input.len() / 2 {
                self.fill()?;
            }
            let last = self.eof;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.start..self.end],
                &mut self.output,
                last,
            );
            self.start += read;
            self.consumed += read as u64;
            self.out_start = 0;
            self.out_end = written;
            match result {
                DecoderResult::Malformed(bad, after) => {
                    let offset = self.consumed - u64::from(bad) - u64::from(after);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        DecodeError {
                            offset,
                            encoding: self.encoding.name(),
                            why: self.why,
                        },
                    ));
                }
                DecoderResult::InputEmpty if last => self.done = true,
                DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
            }
            if written > 0 {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_start == self.out_end && !self.decode_more()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], wanted: TextEncoding) -> (Result<String, DecodeError>, Detected) {
        let (enc, why) = choose(bytes, wanted, || utf8_check(bytes)).unwrap();
        let mut out = String::new();
        let r = DecodeReader::new(bytes, enc, why).read_to_string(&mut out);
        (
            r.map(|_| out).map_err(|e| {
                *e.into_inner()
                    .unwrap()
                    .downcast::<DecodeError>()
                    .expect("a decode error")
            }),
            why,
        )
    }

    #[test]
    fn windows_1252_without_bom_is_detected() {
        // "Müller;Gdańsk" can't be cp1252 (ń), so: "Müller;Zürich" as Excel writes it.
        let bytes = b"last_name;city\r\nM\xfcller;Z\xfcrich\r\n\x80 5\r\n";
        let (text, why) = decode(bytes, TextEncoding::Auto);
        assert_eq!(why, Detected::NotUtf8(17));
        assert_eq!(text.unwrap(), "last_name;city\r\nMüller;Zürich\r\n€ 5\r\n");
    }

    #[test]
    fn utf8_with_and_without_bom_and_utf16() {
        let (t, why) = decode("city\nZürich\n".as_bytes(), TextEncoding::Auto);
        assert_eq!(
            (t.unwrap().as_str(), why),
            ("city\nZürich\n", Detected::ValidUtf8)
        );
        let (t, why) = decode("\u{feff}city\nZürich\n".as_bytes(), TextEncoding::Auto);
        assert_eq!(
            (t.unwrap().as_str(), why),
            ("city\nZürich\n", Detected::Bom)
        );
        let utf16: Vec<u8> = "\u{feff}id\tcity\nl:1\tZürich\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let (t, why) = decode(&utf16, TextEncoding::Auto);
        assert_eq!(
            (t.unwrap().as_str(), why),
            ("id\tcity\nl:1\tZürich\n", Detected::Bom)
        );
        // Without its BOM, found by the NUL bytes.
        let (t, why) = decode(&utf16[2..], TextEncoding::Auto);
        assert_eq!(
            (t.unwrap().as_str(), why),
            ("id\tcity\nl:1\tZürich\n", Detected::NulBytes)
        );
    }

    #[test]
    fn a_sequence_cut_by_a_chunk_boundary_is_still_valid() {
        let mut text = "a".repeat(256 * 1024 - 1);
        text.push('ü');
        text.push_str("\nend\n");
        assert_eq!(utf8_check(text.as_bytes()).unwrap(), Ok(()));
        let mut bad = text.into_bytes();
        bad.push(0xff);
        assert_eq!(utf8_check(&bad[..]).unwrap(), Err(bad.len() as u64 - 1));
    }

    #[test]
    fn undecodable_bytes_name_their_offset_and_the_fix() {
        let (r, _) = decode(b"name\nJos\xe9\n", TextEncoding::Fixed(encoding_rs::UTF_8));
        let e = r.unwrap_err();
        assert_eq!(e.offset, 8);
        let msg = e.to_string();
        assert!(
            msg.starts_with("byte 8: not valid UTF-8 (import.encoding)"),
            "{msg}"
        );
        assert!(msg.contains("windows-1252"), "{msg}");
        // An unpaired surrogate in UTF-16.
        let mut utf16: Vec<u8> = vec![0xff, 0xfe, b'a', 0];
        utf16.extend_from_slice(&[0x00, 0xd8, b'b', 0]);
        let (r, _) = decode(&utf16, TextEncoding::Auto);
        assert_eq!(r.unwrap_err().offset, 4);
    }

    #[test]
    fn labels() {
        assert_eq!(TextEncoding::from_label("AUTO"), Some(TextEncoding::Auto));
        assert_eq!(
            TextEncoding::from_label("latin1"),
            Some(TextEncoding::Fixed(WINDOWS_1252))
        );
        assert_eq!(
            TextEncoding::from_label("utf-16le"),
            Some(TextEncoding::Fixed(UTF_16LE))
        );
        assert_eq!(TextEncoding::from_label("klingon"), None);
        assert_eq!(TextEncoding::Fixed(UTF_8).to_string(), "UTF-8");
    }
}
