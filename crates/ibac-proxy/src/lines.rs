//! Bare LF in HTTP/1 framing is refused. hyper ends a line at a lone `\n`;
//! RFC 9112 lets a server refuse that, and a peer that sends it is looking for
//! a parser that frames its bytes differently. This adapter follows HTTP/1
//! framing just far enough to know which bytes are lines (request heads,
//! chunk-size lines, the CRLF after chunk data, trailers) and which are body.
//! At the first bare LF it hands the parser a NUL and an empty line in its
//! place, which hyper answers with 400 before closing the connection; nothing
//! after it is read.
//!
//! Where framing is something hyper refuses anyway (conflicting lengths, an
//! unknown transfer coding, a malformed chunk size) or is HTTP/2, the adapter
//! stops looking and passes bytes through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ibac_identity::authority::read_pending;
use tokio::io::{AsyncRead, ReadBuf};

/// Longest request head or chunk-size line followed; past it hyper's own
/// limits refuse the request.
const MAX_TRACKED: usize = 64 * 1024;

/// The line-based part of a message the adapter is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Request line and header fields, up to the empty line.
    Head,
    /// `<hex size>[;ext]` before a chunk.
    ChunkSize,
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk, up to the empty line.
    Trailers,
}

/// What the bytes after a body's data are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// The next request.
    Head,
    /// The CRLF ending a chunk.
    ChunkEnd,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Inside lines; `text` holds what the section needs to decide framing.
    Lines {
        section: Section,
        text: Vec<u8>,
        line_len: usize,
        after_cr: bool,
    },
    /// Body bytes still to come.
    Data { left: u64, then: After },
    /// Framing the adapter does not follow (HTTP/2, or what hyper refuses).
    Opaque,
    /// A bare LF was replaced; the stream ends here.
    Refused,
}

impl State {
    fn lines(section: Section) -> Self {
        State::Lines {
            section,
            text: Vec::new(),
            line_len: 0,
            after_cr: false,
        }
    }
}

/// What scanning a read found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// Every byte may pass.
    Clean,
    /// A bare LF at this index.
    BareLf(usize),
}

/// The framing tracker, apart from I/O so that it can be tested byte by byte.
#[derive(Debug)]
struct Framing {
    state: State,
}

impl Framing {
    fn new() -> Self {
        Framing {
            state: State::lines(Section::Head),
        }
    }

    fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.state {
                State::Opaque => return Scan::Clean,
                State::Refused => return Scan::BareLf(i),
                State::Data { left, then } => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = match then {
                            After::Head => State::lines(Section::Head),
                            After::ChunkEnd => State::lines(Section::ChunkEnd),
                        };
                    }
                }
                State::Lines {
                    section,
                    text,
                    line_len,
                    after_cr,
                } => {
                    let b = bytes[i];
                    i += 1;
                    if b != b'\n' {
                        *after_cr = b == b'\r';
                        *line_len += 1;
                        if matches!(section, Section::Head | Section::ChunkSize) {
                            text.push(b);
                            if text.len() > MAX_TRACKED {
                                self.state = State::Opaque;
                            }
                        }
                        continue;
                    }
                    if !*after_cr {
                        self.state = State::Refused;
                        return Scan::BareLf(i - 1);
                    }
                    // The line is empty when it held nothing but its CR.
                    let empty = *line_len == 1;
                    *after_cr = false;
                    *line_len = 0;
                    match *section {
                        Section::Head if empty && text.len() == 1 => {
                            // An empty line before the request line is skipped
                            // (RFC 9112 §2.2).
                            text.clear();
                        }
                        Section::Head if empty => {
                            let head = std::mem::take(text);
                            self.state = after_head(&head);
                        }
                        Section::Head => text.push(b'\n'),
                        Section::ChunkSize => {
                            let line = std::mem::take(text);
                            self.state = after_chunk_size(&line);
                        }
                        Section::ChunkEnd if empty => self.state = State::lines(Section::ChunkSize),
                        Section::ChunkEnd => self.state = State::Opaque,
                        Section::Trailers if empty => self.state = State::lines(Section::Head),
                        Section::Trailers => {}
                    }
                }
            }
        }
        Scan::Clean
    }
}

/// The state after a complete head (its lines, CRs kept, each ending in `\n`).
fn after_head(head: &[u8]) -> State {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() == Some("PRI * HTTP/2.0") {
        return State::Opaque;
    }
    let mut codings: Option<String> = None;
    let mut lengths: Vec<u64> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            return State::Opaque;
        }
        let Some((name, value)) = line.split_once(':') else {
            return State::Opaque;
        };
        if name.eq_ignore_ascii_case("transfer-encoding") {
            let all = codings.get_or_insert_with(String::new);
            all.push(',');
            all.push_str(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            for part in value.split(',') {
                match part.trim().parse::<u64>() {
                    Ok(n) => lengths.push(n),
                    Err(_) => return State::Opaque,
                }
            }
        }
    }
    if let Some(codings) = codings {
        let last = codings.rsplit(',').map(str::trim).find(|c| !c.is_empty());
        return match last {
            Some(c) if c.eq_ignore_ascii_case("chunked") => State::lines(Section::ChunkSize),
            _ => State::Opaque,
        };
    }
    match lengths.split_first() {
        None | Some((0, [])) => State::lines(Section::Head),
        Some((&n, rest)) if rest.iter().all(|&m| m == n) => {
            if n == 0 {
                State::lines(Section::Head)
            } else {
                State::Data {
                    left: n,
                    then: After::Head,
                }
            }
        }
        Some(_) => State::Opaque,
    }
}

/// The state after a chunk-size line (CR kept).
fn after_chunk_size(line: &[u8]) -> State {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let size = text.split(';').next().unwrap_or_default().trim_end();
    match u64::from_str_radix(size, 16) {
        Ok(0) => State::lines(Section::Trailers),
        Ok(n) => State::Data {
            left: n,
            then: After::ChunkEnd,
        },
        Err(_) => State::Opaque,
    }
}

/// What the parser reads instead of a bare LF: a byte no line may hold, and
/// an empty line so that it does not wait for more.
const REFUSAL: &[u8] = b"\0\r\n\r\n";

/// Wraps a server-side stream; see the module documentation.
pub struct StrictLines<S> {
    inner: S,
    framing: Framing,
    on_refuse: Option<Box<dyn FnOnce() + Send>>,
    /// What is left of [`REFUSAL`] to hand over.
    pending: &'static [u8],
}

impl<S> StrictLines<S> {
    /// Wraps `inner`; `on_refuse` runs once, when a bare LF is refused.
    pub fn new(inner: S, on_refuse: impl FnOnce() + Send + 'static) -> Self {
        StrictLines {
            inner,
            framing: Framing::new(),
            on_refuse: Some(Box::new(on_refuse)),
            pending: &[],
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StrictLines<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.framing.state == State::Refused {
            read_pending(&mut this.pending, buf);
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && let Scan::BareLf(at) = this.framing.scan(&buf.filled()[start..])
        {
            buf.set_filled(start + at);
            this.pending = REFUSAL;
            read_pending(&mut this.pending, buf);
            if let Some(report) = this.on_refuse.take() {
                report();
            }
        }
        result
    }
}

ibac_identity::write_through!(StrictLines);

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `bytes` one read of `step` bytes at a time; the index of the
    /// refused LF in the whole input, if any.
    fn bare_lf(bytes: &[u8], step: usize) -> Option<usize> {
        let mut f = Framing::new();
        for (n, chunk) in bytes.chunks(step).enumerate() {
            if let Scan::BareLf(at) = f.scan(chunk) {
                return Some(n * step + at);
            }
        }
        None
    }

    fn every_split(bytes: &[u8]) -> Option<usize> {
        let whole = bare_lf(bytes, bytes.len().max(1));
        for step in 1..bytes.len().min(40) {
            assert_eq!(bare_lf(bytes, step), whole, "reads of {step} bytes");
        }
        whole
    }

    #[test]
    fn crlf_lines_bodies_and_framing_left_to_hyper_pass() {
        let cases: [(&str, &[u8]); 8] = [
            (
                "pipelined requests",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            (
                "an empty line before a request",
                b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            (
                "LF in a sized body is data",
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\na\nb\ncGET / HTTP/1.1\r\n\r\n",
            ),
            (
                "LF in chunk data is data, past extensions and trailers",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\nb\r\n2;x=y\r\n\n\n\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            ),
            (
                "HTTP/2 is not HTTP/1 framing",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\n\n\n",
            ),
            (
                "conflicting lengths, which hyper refuses",
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n\n",
            ),
            (
                "an unknown transfer coding, which hyper refuses",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n\n",
            ),
            (
                "a malformed chunk size, which hyper refuses",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\n",
            ),
        ];
        for (what, bytes) in cases {
            assert_eq!(
                every_split(bytes),
                None,
                "{what}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn bare_lf_in_any_line_is_found() {
        let cases: [(&[u8], usize); 6] = [
            (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 14),
            (b"GET / HTTP/1.1\r\nHost: x\n\r\n", 23),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\n", 25),
            (b"GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\n\n", 33),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
                48,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: v\n\r\n",
                54,
            ),
        ];
        for (bytes, at) in cases {
            assert_eq!(
                every_split(bytes),
                Some(at),
                "{}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(bytes[at], b'\n');
        }
    }
}
