// One TCP connection of a peer session: the read half framed by the BGP
// codec and polled by the peer's task, the write half owned by a writer
// task behind a bounded queue, so a slow peer only ever stalls its own
// session (and back-pressures it), never the others.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::session::ConnId;
use crate::wire::{BgpCodec, CodecError, CodecParams, DecodeError, Message};

/// Messages waiting for the socket, per connection. Large enough for a
/// burst of UPDATEs; when full the session waits for the peer to read.
const WRITE_QUEUE: usize = 256;
/// How long a send waits for room in a full queue before the session
/// gives the peer up as not reading (the hold timer cannot run meanwhile).
const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long closing waits for queued messages to reach the socket.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

enum WriterCommand {
    Send(Message),
    Params(CodecParams),
    /// Flush what is queued, then close.
    Close,
}

pub struct Connection {
    pub id: ConnId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    reader: FramedRead<OwnedReadHalf, BgpCodec>,
    writer: mpsc::Sender<WriterCommand>,
    written: tokio::task::JoinHandle<()>,
}

/// What reading a connection produced.
pub enum Incoming {
    Message(Message),
    Malformed(DecodeError),
    Closed,
}

impl Connection {
    pub fn new(id: ConnId, stream: TcpStream) -> std::io::Result<Connection> {
        let local = stream.local_addr()?;
        let remote = stream.peer_addr()?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let written = tokio::spawn(write_loop(FramedWrite::new(write, BgpCodec::new()), rx));
        Ok(Connection {
            id,
            local,
            remote,
            reader: FramedRead::new(read, BgpCodec::new()),
            writer: tx,
            written,
        })
    }

    /// The next message; cancel-safe, so it can sit in a `select!`.
    pub async fn read(&mut self) -> Incoming {
        match self.reader.next().await {
            Some(Ok(message)) => Incoming::Message(message),
            Some(Err(CodecError::Decode(error))) => Incoming::Malformed(error),
            Some(Err(_)) => Incoming::Closed,
            None => Incoming::Closed,
        }
    }

    /// Queues a message; waits while the queue is full, but not longer than
    /// `WRITE_STALL`. False when the writer has gone (the socket failed) or
    /// the peer stopped reading: the session must then end.
    pub async fn send(&self, message: Message) -> bool {
        let queued = self.writer.send(WriterCommand::Send(message));
        matches!(tokio::time::timeout(WRITE_STALL, queued).await, Ok(Ok(())))
    }

    /// Switches both directions to what the OPENs negotiated. The reader
    /// switches at once (nothing after the OPEN has been decoded yet, as
    /// the task handles each message before reading the next); the writer
    /// in order with the messages queued before.
    pub async fn set_params(&mut self, params: CodecParams) {
        self.reader.decoder_mut().set_params(params.clone());
        let queued = self.writer.send(WriterCommand::Params(params));
        let _ = tokio::time::timeout(WRITE_STALL, queued).await;
    }

    /// Flushes queued messages (a NOTIFICATION, usually), then closes the
    /// socket; waits a little for that, but not for a peer that stopped
    /// reading.
    pub async fn close(self) {
        let _ = self.writer.send(WriterCommand::Close).await;
        let mut written = self.written;
        if tokio::time::timeout(CLOSE_GRACE, &mut written)
            .await
            .is_err()
        {
            written.abort();
        }
    }
}

async fn write_loop(
    mut framed: FramedWrite<OwnedWriteHalf, BgpCodec>,
    mut commands: mpsc::Receiver<WriterCommand>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            WriterCommand::Send(message) => {
                // Batch what is already queued into one flush.
                if let Err(e) = framed.feed(message).await {
                    tracing::warn!(error = %e, "cannot write a message; closing the connection");
                    return;
                }
                if commands.is_empty()
                    && let Err(e) = SinkExt::<Message>::flush(&mut framed).await
                {
                    tracing::debug!(error = %e, "write failed");
                    return;
                }
            }
            WriterCommand::Params(params) => framed.encoder_mut().set_params(params),
            WriterCommand::Close => break,
        }
    }
    let _ = SinkExt::<Message>::flush(&mut framed).await;
    let _ = framed.get_mut().shutdown().await;
}
