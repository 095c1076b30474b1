//! DNS_CHECK (check_dns.c): one query (`type`, default SOA, for `name`,
//! default the root) with recursion desired, over UDP, to the server. The
//! server is up when an answer with our query id comes back with rcode
//! NOERROR; keepalived looks at nothing else (not at the answer records).
//! Datagrams with another id, or that are not responses, are ignored until
//! connect_timeout; a timeout is a failure, retried `retry` (3) times.

use super::checker::Probe;
use super::net::{pair, udp_connect, ConnOpts};
use ferrovs_config::model::DnsCheck;
use hickory_proto::op::{Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use std::str::FromStr;
use tokio::time::{timeout_at, Instant};

/// Why the query could not be written (the check reports the server down
/// with this text, as it always has).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("bad name {name}: {error}")]
    Name {
        name: String,
        error: hickory_proto::ProtoError,
    },
    #[error("bad type {qtype}: {error}")]
    Type {
        qtype: String,
        error: hickory_proto::ProtoError,
    },
    #[error(transparent)]
    Encode(hickory_proto::ProtoError),
}

/// The query keepalived sends: one question, class IN, RD set, no EDNS.
pub fn query(id: u16, d: &DnsCheck) -> Result<Vec<u8>, QueryError> {
    let name = Name::from_ascii(&d.name).map_err(|error| QueryError::Name {
        name: d.name.clone(),
        error,
    })?;
    let rtype = RecordType::from_str(&d.qtype).map_err(|error| QueryError::Type {
        qtype: d.qtype.clone(),
        error,
    })?;
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, rtype));
    m.to_vec().map_err(QueryError::Encode)
}

pub async fn probe(o: &ConnOpts, d: &DnsCheck) -> Probe {
    let sock = match udp_connect(o).await {
        Ok(s) => s,
        Err(_) => return Probe::down(format!("network unreachable for {}", pair(o.dst))),
    };
    let id: u16 = rand::random();
    let q = match query(id, d) {
        Ok(q) => q,
        Err(e) => return Probe::down(e.to_string()),
    };
    let deadline = Instant::now() + o.timeout;
    match timeout_at(deadline, sock.send(&q)).await {
        Err(_) => return Probe::down("write timeout to socket."),
        Ok(Err(_)) => return Probe::down("failed to write socket."),
        Ok(Ok(n)) if n != q.len() => return Probe::down("failed to write all of the datagram."),
        Ok(Ok(_)) => {}
    }
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Probe::down("read timeout from socket"),
            Ok(Err(e)) => {
                return Probe::down(format!(
                    "failed to read socket; errno {} ({e})",
                    e.raw_os_error().unwrap_or(0)
                ))
            }
            Ok(Ok(n)) => n,
        };
        let Ok(h) = Header::read(&mut BinDecoder::new(&buf[..n])) else {
            continue; // too small to be an answer
        };
        if h.id() != id || h.message_type() != MessageType::Response {
            continue;
        }
        let rcode = h.response_code().low();
        if rcode != 0 {
            return Probe::down(format!("read error occurred. (rcode = {rcode})"));
        }
        return Probe::up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::net::UdpSocket;

    fn opts(dst: SocketAddr) -> ConnOpts {
        ConnOpts::to(dst, Duration::from_millis(500))
    }

    fn dns(qtype: &str, name: &str) -> DnsCheck {
        DnsCheck {
            qtype: qtype.into(),
            name: name.into(),
        }
    }

    /// A responder that answers each query after sending first a datagram
    /// with a wrong id (to be ignored), with `rcode`; records the queries.
    async fn responder(
        rcode: ResponseCode,
    ) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Message>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut wrong = Message::new();
                wrong
                    .set_id(q.id().wrapping_add(1))
                    .set_message_type(MessageType::Response);
                let _ = s.send_to(&wrong.to_vec().unwrap(), from).await;
                let mut r = Message::new();
                r.set_id(q.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(OpCode::Query)
                    .set_response_code(rcode)
                    .add_queries(q.queries().to_vec());
                let _ = s.send_to(&r.to_vec().unwrap(), from).await;
                let _ = tx.send(q);
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn noerror_answer_is_up_and_the_query_is_keepalived_s() {
        let (addr, mut rx) = responder(ResponseCode::NoError).await;
        assert_eq!(
            probe(&opts(addr), &dns("A", "example.test")).await,
            Probe::up()
        );
        let q = rx.recv().await.unwrap();
        assert!(q.recursion_desired());
        assert_eq!(q.queries().len(), 1);
        assert_eq!(q.queries()[0].query_type(), RecordType::A);
        assert_eq!(q.queries()[0].name().to_ascii(), "example.test.");
        assert!(q.extensions().is_none());
        // The default: SOA of the root.
        assert_eq!(probe(&opts(addr), &dns("SOA", ".")).await, Probe::up());
        let q = rx.recv().await.unwrap();
        assert_eq!(q.queries()[0].query_type(), RecordType::SOA);
        assert!(q.queries()[0].name().is_root());
    }

    #[tokio::test]
    async fn error_rcode_is_down() {
        let (addr, _rx) = responder(ResponseCode::ServFail).await;
        assert_eq!(
            probe(&opts(addr), &dns("A", "example.test")).await,
            Probe::down("read error occurred. (rcode = 2)")
        );
    }

    #[tokio::test]
    async fn silence_is_a_read_timeout() {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        assert_eq!(
            probe(&opts(addr), &dns("A", "example.test")).await,
            Probe::down("read timeout from socket")
        );
        drop(s);
    }
}
