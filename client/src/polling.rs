//! The HTTP long-polling transport: handshake, Socket.IO connect, and a session run by one
//! writer task (POSTs) and one reader task (long-poll GETs).
//!
//! A polling session is `GET …&transport=polling` (the open packet), then `POST …&sid=SID`
//! carrying packets joined by the record separator `\x1e`, and long-polling `GET …&sid=SID`
//! returning one or more packets joined the same way. The server rejects a second concurrent
//! GET (or POST) of one session, so the client keeps at most one of each in flight. There is
//! no upgrade to WebSocket: a polling client stays on polling.

mod http;

use crate::codec::{self, Packet};
use crate::session::{self, dispatch, AckMap, Incoming, Outgoing};
use crate::{Client, Error};
use http::Http;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Bound on one ordinary request (handshake, POST). A long-poll GET may legitimately last a
/// whole ping interval plus ping timeout: see [`get_limit`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a long-poll GET may take: the server answers at the latest with its next ping,
/// i.e. after `pingInterval`; allow `pingTimeout` and a margin on top, and never less than
/// [`REQUEST_TIMEOUT`].
fn get_limit(ping_interval: Duration, ping_timeout: Duration) -> Duration {
    (ping_interval + ping_timeout + Duration::from_secs(10)).max(REQUEST_TIMEOUT)
}

/// Why a polling session ended, shared by its reader and writer: the first to see the end
/// records it, the other stops.
type Ended = Arc<watch::Sender<Option<String>>>;

/// Records `reason` unless an earlier one is already there.
fn end_session(ended: &Ended, reason: String) {
    ended.send_if_modified(|r| {
        if r.is_none() {
            *r = Some(reason);
            true
        } else {
            false
        }
    });
}

/// Resolves once the session has ended, with the recorded reason.
async fn session_ended(rx: &mut watch::Receiver<Option<String>>) -> String {
    match rx.wait_for(Option::is_some).await {
        Ok(r) => r.clone().unwrap_or_default(),
        Err(_) => "transport close".to_owned(),
    }
}

/// One Engine.IO polling session: where to send requests, and its limits.
#[derive(Clone)]
struct PollSession {
    http: Http,
    /// The request target with `&sid=…`.
    target: String,
    /// Bound on one long-poll GET.
    get_limit: Duration,
    /// The server's `maxPayload`: a POST body never exceeds it (unless one packet does).
    max_payload: usize,
}

impl PollSession {
    /// POSTs `body` (packets joined by `\x1e`); returns the status (the server answers `200`
    /// `ok`, or `400`/`413` and closes the session).
    async fn post(&self, body: String) -> Result<u16, Error> {
        let (status, _) = self
            .http
            .request(&self.target, Some(body), REQUEST_TIMEOUT)
            .await?;
        Ok(status)
    }

    /// [`PollSession::post`] during the handshake, where anything but `200` is an error.
    async fn post_ok(&self, body: &str) -> Result<(), Error> {
        match self.post(body.to_owned()).await? {
            200 => Ok(()),
            status => Err(Error::Http(format!("POST {body:?}: HTTP {status}"))),
        }
    }

    /// Long-polls once; returns the payload. A non-`200` status or an empty payload (what the
    /// server answers when the session closes under a pending poll) is `Error::Closed`.
    async fn get(&self) -> Result<String, Error> {
        let (status, body) = self
            .http
            .request(&self.target, None, self.get_limit)
            .await?;
        if status != 200 {
            return Err(Error::Closed(format!("GET: HTTP {status} {body}")));
        }
        if body.is_empty() {
            return Err(Error::Closed("GET: empty payload".into()));
        }
        Ok(body)
    }
}

/// Handshakes with `base` (`http://host:port[/prefix]`), joins namespace `/`, then hands the
/// session to a writer task and a reader task. Unbounded: the caller bounds it.
pub(crate) async fn connect(base: &str) -> Result<Client, Error> {
    let http = Http::new(base)?;
    // Engine.IO open.
    let (status, body) = http
        .request(&http.target(None), None, REQUEST_TIMEOUT)
        .await?;
    if status != 200 {
        return Err(Error::Http(format!("handshake: HTTP {status} {body}")));
    }
    let open = match codec::split_payload(&body).next().map(codec::parse) {
        Some(Ok(Packet::Open(v))) => v,
        Some(Err(e)) => return Err(e),
        other => return Err(Error::Protocol(format!("expected open, got {other:?}"))),
    };
    let eio_sid = open["sid"]
        .as_str()
        .ok_or_else(|| Error::Protocol(format!("open packet without sid: {open}")))?;
    let millis =
        |key: &str, default: u64| Duration::from_millis(open[key].as_u64().unwrap_or(default));
    let session = PollSession {
        target: http.target(Some(eio_sid)),
        get_limit: get_limit(
            millis("pingInterval", 25_000),
            millis("pingTimeout", 20_000),
        ),
        max_payload: open["maxPayload"]
            .as_u64()
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(100_000),
        http,
    };
    // Socket.IO connect to `/`.
    session.post_ok(codec::CONNECT).await?;
    let mut leftover = Vec::new();
    let sid = 'connected: loop {
        let body = session
            .get()
            .await
            .map_err(|e| Error::Closed(format!("before connect: {e}")))?;
        let mut packets = codec::split_payload(&body);
        while let Some(p) = packets.next() {
            match codec::parse(p)? {
                Packet::Connect(v) => {
                    leftover.extend(packets.map(str::to_owned));
                    break 'connected v["sid"].as_str().unwrap_or_default().to_owned();
                }
                Packet::ConnectError(v) => {
                    return Err(Error::Protocol(format!("connect refused: {v}")))
                }
                Packet::Ping => session.post_ok(codec::PONG).await?,
                Packet::Close => return Err(Error::Closed("before connect".into())),
                _ => {}
            }
        }
    };

    let (client, ends) = session::attach(sid);
    let ended: Ended = Arc::new(watch::channel(None).0);
    tokio::spawn(writer(session.clone(), ends.out_rx, ended.clone()));
    tokio::spawn(reader(
        session,
        leftover,
        ends.in_tx,
        ends.acks,
        ends.out_tx,
        ended,
    ));
    Ok(client)
}

/// The writer: batches whatever is queued into one POST at a time, until a close has been
/// sent, a POST fails, or the reader saw the session end.
async fn writer(session: PollSession, mut out_rx: mpsc::UnboundedReceiver<Outgoing>, ended: Ended) {
    let mut ended_rx = ended.subscribe();
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut closing = false;
    let queue_one = |m: Outgoing, queue: &mut VecDeque<String>, closing: &mut bool| match m {
        Outgoing::Packet(p) => queue.push_back(p),
        Outgoing::Close => {
            queue.push_back(codec::CLOSE.into());
            *closing = true;
        }
    };
    let reason = loop {
        if queue.is_empty() {
            if closing {
                break "transport close".to_owned();
            }
            tokio::select! {
                m = out_rx.recv() => match m {
                    Some(m) => queue_one(m, &mut queue, &mut closing),
                    None => break "transport close".to_owned(),
                },
                _ = session_ended(&mut ended_rx) => return,
            }
        }
        while !closing {
            match out_rx.try_recv() {
                Ok(m) => queue_one(m, &mut queue, &mut closing),
                Err(_) => break,
            }
        }
        let body = codec::take_batch(&mut queue, session.max_payload);
        let sent = tokio::select! {
            r = session.post(body) => r,
            _ = session_ended(&mut ended_rx) => return,
        };
        match sent {
            Ok(200) => {}
            Ok(_) => break "transport close".to_owned(),
            Err(e) => break format!("transport error: {e}"),
        }
    };
    end_session(&ended, reason);
}

/// The reader: long-polls one GET at a time and dispatches the packets, starting with
/// `leftover` (what followed the connect packet in the handshake's last payload).
async fn reader(
    session: PollSession,
    leftover: Vec<String>,
    in_tx: mpsc::UnboundedSender<Incoming>,
    acks: AckMap,
    pong: mpsc::UnboundedSender<Outgoing>,
    ended: Ended,
) {
    let mut ended_rx = ended.subscribe();
    let mut reason = leftover
        .iter()
        .find_map(|p| dispatch(p, &in_tx, &acks, &pong));
    while reason.is_none() {
        let got = tokio::select! {
            r = session.get() => r,
            r = session_ended(&mut ended_rx) => {
                session::end(&in_tx, &acks, r);
                return;
            }
        };
        reason = match got {
            Ok(body) => codec::split_payload(&body).find_map(|p| dispatch(p, &in_tx, &acks, &pong)),
            Err(Error::Closed(_)) => Some("transport close".to_owned()),
            Err(e) => Some(format!("transport error: {e}")),
        };
    }
    let reason = reason.unwrap_or_default();
    end_session(&ended, reason.clone());
    // Report what ended the session first (the writer may have recorded it).
    let reason = ended.borrow().clone().unwrap_or(reason);
    session::end(&in_tx, &acks, reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_limits_cover_a_ping_round() {
        let s = Duration::from_secs;
        assert_eq!(get_limit(s(25), s(20)), s(60));
        assert_eq!(get_limit(s(60), s(20)), s(90));
    }
}
