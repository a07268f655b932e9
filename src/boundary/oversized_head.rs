//! Request heads too large for actix-http's own parser. Its HTTP/1 decoder gives up on a head
//! past 128 KiB or 96 header fields and answers, before any middleware runs, with a bare 431
//! (no body) and closes the connection; [`guard`](super::guard) sees only smaller heads. Each
//! accepted connection's stream is a [`HeadGuardedStream`]: it passes every byte through, and
//! when the dispatcher writes that bare 431 it writes the same answer with an OpenAI-shaped
//! JSON body instead ([`OversizedHeadAnswer`], from the one error table). The client is still
//! sending the rest of its head then, so once the dispatcher lets the connection go the stream
//! closes it gently: it stops writing, then reads and discards what the client still sends
//! (bounded in bytes and time) so the client can read the answer instead of a reset.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_web::ResponseError;
use memchr::memmem::Finder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::{ApiError, ErrorCode};

/// The start of what actix-http writes when a request head overflows its parser: the status
/// line and the empty body's length, as its HTTP/1 encoder spells them.
const BARE_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n";
/// actix-http's limits on a request head (`MAX_BUFFER_SIZE`, `MAX_HEADERS` in its decoder).
const PARSER_MAX_HEAD_BYTES: usize = 128 * 1024;
const PARSER_MAX_HEADERS: usize = 96;
/// How much of a refused client's remaining head is read and dropped before closing, and for
/// how long: enough for a 1 MB header to arrive whole.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

static BARE_431_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(BARE_431));

/// The headers and body that replace the bare answer's `content-length: 0`; made once at
/// start-up and shared by every connection.
#[derive(Debug, Clone)]
pub struct OversizedHeadAnswer {
    replacement: Arc<[u8]>,
    body_len: usize,
    body: Arc<[u8]>,
}

impl OversizedHeadAnswer {
    /// The answer for a server whose own header limit is `max_header_bytes`.
    pub fn new(max_header_bytes: usize) -> Self {
        let limit = max_header_bytes.min(PARSER_MAX_HEAD_BYTES);
        let error = ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "The request headers are larger than the limit of {limit} bytes \
                 (or have more than {PARSER_MAX_HEADERS} fields)."
            ),
        );
        debug_assert_eq!(error.status_code().as_u16(), 431);
        let body: Arc<[u8]> = serde_json::to_vec(&error.body()).unwrap_or_default().into();
        let replacement = format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        Self {
            replacement: replacement.into_bytes().into(),
            body_len: body.len(),
            body,
        }
    }

    /// `head` (a whole bare 431 head, ending with its blank line) rewritten with the body.
    fn rewrite(&self, head: &[u8]) -> Vec<u8> {
        let status_line = BARE_431.len() - b"content-length: 0\r\n".len();
        let mut answer = Vec::with_capacity(head.len() + self.replacement.len() + self.body_len);
        answer.extend_from_slice(&head[..status_line]);
        answer.extend_from_slice(&self.replacement);
        answer.extend_from_slice(&head[BARE_431.len()..]);
        answer.extend_from_slice(&self.body);
        answer
    }
}

/// The rewritten answer being written, and how many of the dispatcher's bytes it stands for.
struct Rewritten {
    bytes: Vec<u8>,
    written: usize,
    stands_for: usize,
}

/// A connection's stream under actix-http; see the module documentation.
pub struct HeadGuardedStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Taken only on drop, to close a refused connection gently.
    inner: Option<T>,
    answer: OversizedHeadAnswer,
    rewritten: Option<Rewritten>,
    /// The 431 went out: the client may still be sending its head.
    refused: bool,
}

impl<T> HeadGuardedStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(inner: T, answer: OversizedHeadAnswer) -> Self {
        Self {
            inner: Some(inner),
            answer,
            rewritten: None,
            refused: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until dropped")
    }

    fn inner(&mut self) -> Pin<&mut T> {
        Pin::new(self.inner.as_mut().expect("present until dropped"))
    }

    /// Writes what is left of the rewritten answer, if any.
    fn poll_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(rewritten) = self.rewritten.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let inner = Pin::new(self.inner.as_mut().expect("present until dropped"));
        let mut inner = inner;
        while rewritten.written < rewritten.bytes.len() {
            let written = ready!(
                inner
                    .as_mut()
                    .poll_write(cx, &rewritten.bytes[rewritten.written..])
            )?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rewritten.written += written;
        }
        self.refused = true;
        Poll::Ready(Ok(()))
    }
}

impl<T> AsyncRead for HeadGuardedStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().inner().poll_read(cx, buf)
    }
}

impl<T> AsyncWrite for HeadGuardedStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewritten.is_none() {
            match BARE_431_FINDER.find(buf) {
                None => return this.inner().poll_write(cx, buf),
                // What comes before it (the end of an earlier answer) goes out as it is.
                Some(start) if start > 0 => return this.inner().poll_write(cx, &buf[..start]),
                Some(_) => {
                    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
                        return this.inner().poll_write(cx, buf);
                    };
                    let head = &buf[..end + 4];
                    this.rewritten = Some(Rewritten {
                        bytes: this.answer.rewrite(head),
                        written: 0,
                        stands_for: head.len(),
                    });
                }
            }
        }
        // The dispatcher offers the same bytes again until they are taken; they are taken
        // once their replacement is written.
        ready!(this.poll_rewritten(cx))?;
        Poll::Ready(Ok(this.rewritten.take().map_or(0, |done| done.stands_for)))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewritten(cx))?;
        this.inner().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewritten(cx))?;
        this.inner().poll_shutdown(cx)
    }
}

impl<T> Drop for HeadGuardedStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        if !self.refused {
            return;
        }
        let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(close_gently(stream));
    }
}

/// Ends the answer (FIN), then drops what the client still sends, within bounds, so that
/// closing with its bytes unread does not reset the connection before it read the answer.
async fn close_gently<T: AsyncRead + AsyncWrite + Unpin>(mut stream: T) {
    let drain = async {
        stream.shutdown().await?;
        let mut scratch = vec![0u8; 16 * 1024];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await? {
                0 => break,
                read => dropped += read,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// What a client reads of `chunks` written through the stream, over a pipe that takes
    /// `pipe` bytes at a time.
    async fn written_through_pipe(chunks: &[&[u8]], pipe: usize) -> Vec<u8> {
        let (mut client, server) = duplex(pipe);
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut seen)).await;
            seen
        });
        let mut stream = HeadGuardedStream::new(server, OversizedHeadAnswer::new(32 * 1024));
        for chunk in chunks {
            stream.write_all(chunk).await.unwrap();
        }
        stream.flush().await.unwrap();
        drop(stream);
        reader.await.unwrap()
    }

    async fn written_through(chunks: &[&[u8]]) -> Vec<u8> {
        written_through_pipe(chunks, 1 << 20).await
    }

    const BARE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                          connection: close\r\ndate: Sun, 06 Dec 2026 11:51:43 GMT\r\n\r\n";

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[tokio::test]
    async fn the_bare_431_gets_the_openai_error_body() {
        let (head, body) = split(&written_through(&[BARE]).await);
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let length: usize = head
            .split("content-length: ")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(length, serde_json::to_vec(&body).unwrap().len());
        assert_eq!(body["error"]["code"], "headers_too_large");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[tokio::test]
    async fn a_slow_client_gets_the_whole_answer_once() {
        let seen = written_through_pipe(&[BARE], 7).await;
        assert_eq!(seen, written_through(&[BARE]).await);
        let (_, body) = split(&seen);
        assert_eq!(body["error"]["code"], "headers_too_large");
    }

    #[tokio::test]
    async fn an_earlier_answer_in_the_same_write_passes_unchanged() {
        let earlier: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let seen = written_through(&[&[earlier, BARE].concat()]).await;
        assert!(seen.starts_with(earlier));
        let (_, body) = split(&seen[earlier.len()..]);
        assert_eq!(body["error"]["code"], "headers_too_large");
    }

    #[tokio::test]
    async fn other_answers_pass_unchanged() {
        let answer: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
                              content-length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(written_through(&[answer]).await, answer);
    }
}
