//! Makes the HTTP/2 server under tonic accept the `:authority` that gRPC
//! clients send on a Unix socket.
//!
//! gRPC's C-core and grpc-java send the socket's path (percent-encoded or not)
//! as `:authority`, others `localhost` or nothing; the HTTP/2 server refuses
//! most of these as malformed. [`AuthorityRewrite`] sits between the socket
//! and the server: it reads the client's frames, decodes each header block
//! with an HPACK decoder, sets `:authority` to `localhost` and re-encodes the
//! block with an encoder of its own, so the server's decoder stays in step.
//! Every other frame and every other header passes through untouched; the
//! server still applies all of its own checks and limits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// The authority every rewritten header block carries.
pub const REWRITTEN_AUTHORITY: &[u8] = b"localhost";

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload a server accepts unless it says otherwise
/// (RFC 9113 §4.2); the HTTP/2 server here keeps that default.
const MAX_FRAME: usize = 16_384;
/// The largest header block buffered across HEADERS and CONTINUATION frames.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The dynamic table size both sides start with (RFC 7541 §4.2), which the
/// HTTP/2 server here keeps: the client's encoder may not go beyond it.
const HEADER_TABLE_SIZE: usize = 4_096;

/// A header block whose CONTINUATION frames are still to come.
struct Pending {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

/// Rewrites `:authority` in the header blocks a client sends; see the module
/// documentation. Writes go to the inner stream unchanged.
pub struct AuthorityRewrite<S> {
    inner: S,
    raw: BytesMut,
    ready: BytesMut,
    preface_left: usize,
    payload_left: usize,
    pending: Option<Pending>,
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
    eof: bool,
}

impl<S> std::fmt::Debug for AuthorityRewrite<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityRewrite")
            .field("buffered", &self.raw.len())
            .finish_non_exhaustive()
    }
}

fn malformed(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

impl<S> AuthorityRewrite<S> {
    /// Wraps a freshly accepted connection, before the client's preface.
    pub fn new(inner: S) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        AuthorityRewrite {
            inner,
            raw: BytesMut::with_capacity(8 * 1024),
            ready: BytesMut::new(),
            preface_left: PREFACE.len(),
            payload_left: 0,
            pending: None,
            decoder,
            encoder: loona_hpack::Encoder::new(),
            eof: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves what can be moved from `raw` to `ready`. Returns whether
    /// anything was done; `Ok(false)` means more input is needed.
    fn step(&mut self) -> io::Result<bool> {
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.raw.len());
            if n == 0 {
                return Ok(false);
            }
            let start = PREFACE.len() - self.preface_left;
            if self.raw[..n] != PREFACE[start..start + n] {
                return Err(malformed(
                    "the client did not start with the HTTP/2 preface",
                ));
            }
            self.ready.put(self.raw.split_to(n));
            self.preface_left -= n;
            return Ok(true);
        }
        if self.payload_left > 0 {
            let n = self.payload_left.min(self.raw.len());
            if n == 0 {
                return Ok(false);
            }
            self.ready.put(self.raw.split_to(n));
            self.payload_left -= n;
            return Ok(true);
        }
        if self.raw.len() < FRAME_HEADER {
            return Ok(false);
        }
        let length = usize::from(self.raw[0]) << 16
            | usize::from(self.raw[1]) << 8
            | usize::from(self.raw[2]);
        let kind = self.raw[3];
        let flags = self.raw[4];
        let stream =
            u32::from_be_bytes([self.raw[5], self.raw[6], self.raw[7], self.raw[8]]) & 0x7fff_ffff;
        if kind != HEADERS && kind != CONTINUATION {
            if self.pending.is_some() {
                return Err(malformed("a header block was interrupted by another frame"));
            }
            self.ready.put(self.raw.split_to(FRAME_HEADER));
            self.payload_left = length;
            return Ok(true);
        }
        if length > MAX_FRAME {
            return Err(malformed(format!(
                "a header frame of {length} bytes exceeds the frame size limit"
            )));
        }
        if self.raw.len() < FRAME_HEADER + length {
            return Ok(false);
        }
        self.raw.advance(FRAME_HEADER);
        let payload = self.raw.split_to(length);
        if kind == HEADERS {
            self.headers(stream, flags, &payload)?;
        } else {
            self.continuation(stream, flags, &payload)?;
        }
        Ok(true)
    }

    fn headers(&mut self, stream: u32, flags: u8, payload: &[u8]) -> io::Result<()> {
        if self.pending.is_some() {
            return Err(malformed("a header block was interrupted by another frame"));
        }
        let mut body = payload;
        let mut padding = 0;
        if flags & PADDED != 0 {
            let (&pad, rest) = body
                .split_first()
                .ok_or_else(|| malformed("a padded header frame has no pad length"))?;
            padding = usize::from(pad);
            body = rest;
        }
        let mut priority = None;
        if flags & PRIORITY != 0 {
            let (fields, rest) = body
                .split_first_chunk::<5>()
                .ok_or_else(|| malformed("a header frame is too short for its priority"))?;
            priority = Some(*fields);
            body = rest;
        }
        let fragment = body
            .len()
            .checked_sub(padding)
            .and_then(|n| body.get(..n))
            .ok_or_else(|| malformed("a header frame's padding exceeds its payload"))?;
        self.pending = Some(Pending {
            stream,
            flags,
            priority,
            block: fragment.to_vec(),
        });
        if flags & END_HEADERS != 0 {
            self.finish()?;
        }
        Ok(())
    }

    fn continuation(&mut self, stream: u32, flags: u8, payload: &[u8]) -> io::Result<()> {
        let pending = self
            .pending
            .as_mut()
            .filter(|p| p.stream == stream)
            .ok_or_else(|| {
                malformed("a CONTINUATION frame follows no header frame of its stream")
            })?;
        if pending.block.len() + payload.len() > MAX_HEADER_BLOCK {
            return Err(malformed("a header block exceeds 64 KiB"));
        }
        pending.block.extend_from_slice(payload);
        if flags & END_HEADERS != 0 {
            self.finish()?;
        }
        Ok(())
    }

    /// Decodes the complete block, rewrites `:authority`, re-encodes and
    /// queues it as HEADERS (and CONTINUATION) frames.
    fn finish(&mut self) -> io::Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.decoder
            .decode_with_cb(&pending.block, |name, value| {
                let value = if name.as_ref() == b":authority" {
                    REWRITTEN_AUTHORITY.to_vec()
                } else {
                    value.into_owned()
                };
                fields.push((name.into_owned(), value));
            })
            .map_err(|e| malformed(format!("cannot decode a header block: {e:?}")))?;
        let mut block = Vec::with_capacity(pending.block.len() + 16);
        if let Some(priority) = pending.priority {
            block.extend_from_slice(&priority);
        }
        self.encoder.encode_into(
            fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
            &mut block,
        )?;
        let mut chunks = block.chunks(MAX_FRAME).peekable();
        let mut first = true;
        // An empty block still needs its HEADERS frame.
        if chunks.peek().is_none() {
            self.frame(
                HEADERS,
                pending.flags & END_STREAM | END_HEADERS,
                pending.stream,
                &[],
            );
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let end = if last { END_HEADERS } else { 0 };
            if first {
                let mut flags = pending.flags & END_STREAM | end;
                if pending.priority.is_some() {
                    flags |= PRIORITY;
                }
                self.frame(HEADERS, flags, pending.stream, chunk);
                first = false;
            } else {
                self.frame(CONTINUATION, end, pending.stream, chunk);
            }
        }
        Ok(())
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let length = payload.len();
        // `length` is at most MAX_FRAME: it fits in 24 bits.
        self.ready.put_slice(&[
            (length >> 16) as u8,
            (length >> 8) as u8,
            length as u8,
            kind,
            flags,
        ]);
        self.ready.put_u32(stream);
        self.ready.put_slice(payload);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityRewrite<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                read_pending(&mut this.ready, buf);
                return Poll::Ready(Ok(()));
            }
            if this.step()? {
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.raw.extend_from_slice(read.filled());
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Hands a read as much of `pending` as it has room for, and keeps the rest
/// for the next: how a stream adapter serves bytes it made itself (a
/// rewritten frame, a refusal) before reading on.
pub fn read_pending(pending: &mut impl Buf, buf: &mut ReadBuf<'_>) {
    while pending.has_remaining() && buf.remaining() > 0 {
        let chunk = pending.chunk();
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk[..n]);
        pending.advance(n);
    }
}

/// Implements `AsyncWrite` for a stream adapter that only changes what is
/// read (a filter such as [`AuthorityRewrite`]): every write goes straight to
/// its `inner` stream, so the adapter adds nothing on the way out.
#[macro_export]
macro_rules! write_through {
    ($adapter:ident) => {
        impl<S: ::tokio::io::AsyncWrite + Unpin> ::tokio::io::AsyncWrite for $adapter<S> {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

crate::write_through!(AuthorityRewrite);

impl tonic::transport::server::Connected for AuthorityRewrite<tokio::net::UnixStream> {
    type ConnectInfo = tonic::transport::server::UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = payload.len();
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn request(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (
                b":path".to_vec(),
                b"/SpiffeWorkloadAPI/FetchX509SVID".to_vec(),
            ),
            (b":authority".to_vec(), authority.to_vec()),
            (b"workload.spiffe.io".to_vec(), b"true".to_vec()),
        ]
    }

    fn encode(encoder: &mut loona_hpack::Encoder<'_>, fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        encoder.encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }

    /// Runs `input` through the adapter and returns what the server reads.
    async fn through(input: Vec<u8>) -> io::Result<Vec<u8>> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut client, &input).await?;
        drop(client);
        let mut out = Vec::new();
        AuthorityRewrite::new(server).read_to_end(&mut out).await?;
        Ok(out)
    }

    /// Splits server-side bytes into frames after the preface.
    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert!(bytes.starts_with(PREFACE));
        let mut rest = &bytes[PREFACE.len()..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            out.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        out
    }

    fn decode(decoder: &mut loona_hpack::Decoder<'_>, block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        decoder.decode(block).unwrap()
    }

    #[tokio::test]
    async fn every_authority_a_client_sends_becomes_localhost() {
        for authority in [
            &b"tmp%2Fwl%2Fagent.sock"[..],
            b"/tmp/wl/agent.sock",
            b"localhost",
            b"",
        ] {
            let mut encoder = loona_hpack::Encoder::new();
            let mut input = PREFACE.to_vec();
            input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
            input.extend(frame(
                HEADERS,
                END_HEADERS,
                1,
                &encode(&mut encoder, &request(authority)),
            ));
            input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
            let out = through(input).await.unwrap();
            let frames = frames(&out);
            assert_eq!(frames.len(), 3);
            assert_eq!((frames[0].0, frames[0].3.len()), (0x4, 0));
            assert_eq!(
                (frames[1].0, frames[1].1, frames[1].2),
                (HEADERS, END_HEADERS, 1)
            );
            let mut decoder = loona_hpack::Decoder::new();
            assert_eq!(decode(&mut decoder, &frames[1].3), request(b"localhost"));
            assert_eq!(frames[2], (0x0, END_STREAM, 1, b"\0\0\0\0\0".to_vec()));
        }
    }

    #[tokio::test]
    async fn the_dynamic_table_stays_in_step_across_requests() {
        // The client indexes its headers, so its second block refers to its
        // table; the server must still decode both with its own decoder.
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        for stream in [1, 3] {
            let block = encode(&mut encoder, &request(b"tmp%2Fagent.sock"));
            input.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
        }
        let out = through(input).await.unwrap();
        let mut decoder = loona_hpack::Decoder::new();
        for (_, flags, _, block) in frames(&out) {
            assert_eq!(flags, END_HEADERS | END_STREAM);
            assert_eq!(decode(&mut decoder, &block), request(b"localhost"));
        }
    }

    #[tokio::test]
    async fn padding_priority_and_continuations_are_handled() {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encode(&mut encoder, &request(b"/run/agent.sock"));
        let (first, second) = block.split_at(7);
        let mut payload = vec![3u8]; // pad length
        payload.extend_from_slice(&[0, 0, 0, 0, 15]); // priority
        payload.extend_from_slice(first);
        payload.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY, 5, &payload));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, second));
        let out = through(input).await.unwrap();
        let frames = frames(&out);
        assert_eq!(frames.len(), 1);
        let (kind, flags, stream, payload) = &frames[0];
        assert_eq!(
            (*kind, *flags, *stream),
            (HEADERS, PRIORITY | END_HEADERS, 5)
        );
        assert_eq!(&payload[..5], &[0, 0, 0, 0, 15]);
        let mut decoder = loona_hpack::Decoder::new();
        assert_eq!(decode(&mut decoder, &payload[5..]), request(b"localhost"));
    }

    #[tokio::test]
    async fn data_frames_stream_through_unchanged_even_when_split() {
        let mut input = PREFACE.to_vec();
        let data = vec![7u8; 40_000];
        input.extend(frame(0x0, 0, 1, &data));
        let out = through(input.clone()).await.unwrap();
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn broken_framing_is_refused() {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encode(&mut encoder, &request(b"x"));
        // A CONTINUATION without its HEADERS.
        let mut lone = PREFACE.to_vec();
        lone.extend(frame(CONTINUATION, END_HEADERS, 1, &block));
        assert!(through(lone).await.is_err());
        // A header block interrupted by a DATA frame.
        let mut interrupted = PREFACE.to_vec();
        interrupted.extend(frame(HEADERS, 0, 1, &block));
        interrupted.extend(frame(0x0, 0, 1, b"x"));
        assert!(through(interrupted).await.is_err());
        // Not HTTP/2 at all.
        assert!(through(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await.is_err());
        // Garbage HPACK.
        let mut garbage = PREFACE.to_vec();
        garbage.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ));
        assert!(through(garbage).await.is_err());
        // A header frame larger than the server allows.
        let mut large = PREFACE.to_vec();
        large.extend(frame(HEADERS, END_HEADERS, 1, &vec![0; MAX_FRAME + 1]));
        assert!(through(large).await.is_err());
    }

    #[tokio::test]
    async fn large_header_blocks_are_split_into_continuations() {
        let mut fields = request(b"/tmp/agent.sock");
        fields.push((b"x-big".to_vec(), vec![b'a'; 30_000]));
        let mut encoder = loona_hpack::Encoder::new();
        let block = encode(&mut encoder, &fields);
        let mut input = PREFACE.to_vec();
        for (i, chunk) in block.chunks(MAX_FRAME).enumerate() {
            let last = (i + 1) * MAX_FRAME >= block.len();
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            input.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, chunk));
        }
        let out = through(input).await.unwrap();
        let frames = frames(&out);
        assert!(frames.len() >= 2);
        assert_eq!(frames[0].0, HEADERS);
        assert!(frames[1..].iter().all(|f| f.0 == CONTINUATION));
        assert_eq!(frames.last().unwrap().1 & END_HEADERS, END_HEADERS);
        let block: Vec<u8> = frames.iter().flat_map(|f| f.3.clone()).collect();
        let mut decoder = loona_hpack::Decoder::new();
        let mut want = fields.clone();
        want[3].1 = b"localhost".to_vec();
        assert_eq!(decode(&mut decoder, &block), want);
    }
}
