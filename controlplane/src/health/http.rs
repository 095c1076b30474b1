//! HTTP_GET and SSL_GET (check_http.c, check_ssl.c): a small HTTP/1.0 or
//! 1.1 client. Every `url` block must pass: the status code within its
//! `status_code` ranges (200-299 by default) and, with `digest`, the MD5
//! of the body equal to it, computed as keepalived does: over the bytes
//! after the blank line ending the headers, cut at Content-Length when the
//! server sends one (a chunked body is hashed as it comes, chunk sizes
//! included, like keepalived and genhash).
//!
//! SSL_GET does not verify the server's certificate (keepalived only does
//! when given a CA file, which the model does not carry); SNI is sent when
//! `enable_sni` is set, with the virtualhost.

use super::checker::Probe;
use super::net::{tcp_connect, ConnOpts, ConnectError};
use ferrovs_config::ipvs::ntop6;
use ferrovs_config::model::{HttpCheck, HttpUrl};
use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

/// Headers larger than this are not a health-check answer.
const MAX_HEADER: usize = 64 * 1024;
/// Bodies are hashed as they stream; a server that never stops talking is
/// cut off here (keepalived has no limit but a read timeout).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Checks every url in turn, each over its own connection; the first
/// failure decides (with keepalived's words for it).
pub async fn probe(o: &ConnOpts, h: &HttpCheck) -> Probe {
    let mut urls = Vec::with_capacity(h.urls.len());
    for u in &h.urls {
        match get(o, h, u).await {
            Ok(what) => urls.push((what, u.path.clone())),
            Err(reason) => return Probe::down(reason),
        }
    }
    Probe::Up { urls }
}

/// The request keepalived sends (check_http.c request_template), with
/// `Connection: close` always: with HTTP/1.0 it is what the server does
/// anyway, and it keeps an HTTP/1.1 server from holding the connection.
pub fn request(h: &HttpCheck, u: &HttpUrl, dst: SocketAddr) -> String {
    let host = match u.virtualhost.as_deref().or(h.virtualhost.as_deref()) {
        Some(v) => v.to_string(),
        None => match dst.ip() {
            IpAddr::V4(a) => format!("{a}:{}", dst.port()),
            IpAddr::V6(a) => format!("[{}]:{}", ntop6(&a), dst.port()),
        },
    };
    let minor = u8::from(h.http_protocol.as_deref() == Some("1.1"));
    format!(
        "GET {} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: {host}\r\n\r\n",
        u.path
    )
}

async fn get(o: &ConnOpts, h: &HttpCheck, u: &HttpUrl) -> Result<&'static str, &'static str> {
    let tcp = match tcp_connect(o).await {
        Ok(s) => s,
        Err(ConnectError::Timeout) => return Err("Timeout connecting"),
        Err(ConnectError::Setup(_)) => return Err("HTTP_CHECK - network unreachable"),
        Err(ConnectError::Failed(_)) => return Err("Error connecting"),
    };
    let req = request(h, u, o.dst);
    if !h.tls {
        return exchange(tcp, &req, u, o.timeout, false).await;
    }
    let vhost = u.virtualhost.as_deref().or(h.virtualhost.as_deref());
    let name = h
        .enable_sni
        .then_some(vhost)
        .flatten()
        .and_then(|v| ServerName::try_from(v.to_string()).ok())
        // An IP address name sends no SNI.
        .unwrap_or_else(|| ServerName::IpAddress(o.dst.ip().into()));
    let tls = match timeout(o.timeout, connector().connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err("SSL handshake/communication error connecting to"),
        Err(_) => return Err("Timeout connecting"),
    };
    exchange(tls, &req, u, o.timeout, true).await
}

/// Sends the request and judges the answer; each read may take up to the
/// connect timeout, as in keepalived.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &str,
    u: &HttpUrl,
    to: Duration,
    tls: bool,
) -> Result<&'static str, &'static str> {
    match timeout(to, async {
        s.write_all(req.as_bytes()).await?;
        s.flush().await
    })
    .await
    {
        Ok(Ok(())) => {}
        _ => return Err("Cannot send get request to"),
    }
    let mut head: Vec<u8> = Vec::new();
    let mut parsed: Option<(u16, Option<u64>)> = None;
    let mut md5 = Md5::new();
    let mut body: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let mut first = true;
    loop {
        let n = match timeout(to, s.read(&mut buf)).await {
            Err(_) => {
                return Err(match (first, tls) {
                    (true, _) => "Timeout WEB read",
                    (false, true) => "Timeout SSL read",
                    (false, false) => "Timeout HTTP read",
                })
            }
            Ok(Ok(n)) => n,
            // Many servers close a TLS connection without close_notify.
            Ok(Err(e)) if tls && e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(_)) => {
                return Err(if tls {
                    "SSL read error from"
                } else {
                    "Read error with"
                })
            }
        };
        first = false;
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if parsed.is_none() {
            head.extend_from_slice(data);
            let Some(end) = find_header_end(&head) else {
                if head.len() > MAX_HEADER {
                    return Err("Read error with");
                }
                continue;
            };
            parsed = Some((status_code(&head[..end]), content_length(&head[..end])));
            let rest = head.split_off(end);
            hash(&mut md5, &mut body, parsed.and_then(|p| p.1), &rest);
            data = &[];
        }
        hash(&mut md5, &mut body, parsed.and_then(|p| p.1), data);
        if body > MAX_BODY {
            return Err("Read error with");
        }
    }
    let Some((status, _)) = parsed else {
        return Err("Read, no data received from");
    };
    let ok_status = if u.status_code.is_empty() {
        (200..=299).contains(&status)
    } else {
        u.status_code
            .iter()
            .any(|r| (r.min..=r.max).contains(&status))
    };
    if !ok_status {
        return Err("HTTP status code error to");
    }
    match &u.digest {
        None => Ok("HTTP status code"),
        Some(want) => {
            let got = hex(&md5.finalize());
            if got.eq_ignore_ascii_case(want) {
                Ok("MD5 digest")
            } else {
                Err("MD5 digest error to")
            }
        }
    }
}

/// Feeds body bytes to the digest, no further than Content-Length.
fn hash(md5: &mut Md5, seen: &mut u64, clen: Option<u64>, data: &[u8]) {
    let take = match clen {
        Some(l) => (l.saturating_sub(*seen)).min(data.len() as u64) as usize,
        None => data.len(),
    };
    md5.update(&data[..take]);
    *seen += data.len() as u64;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Offset of the first body byte (after `\r\n\r\n`).
fn find_header_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The status code of the status line (keepalived's extract_status_code:
/// the three digits after the first space), 0 when there is none.
pub fn status_code(head: &[u8]) -> u16 {
    let line = head.split(|&c| c == b'\r').next().unwrap_or(&[]);
    let Some(sp) = line.iter().position(|&c| c == b' ') else {
        return 0;
    };
    let code = &line[sp + 1..];
    if code.len() < 3 || !code[..3].iter().all(u8::is_ascii_digit) {
        return 0;
    }
    if code.len() > 3 && code[3] != b' ' {
        return 0;
    }
    std::str::from_utf8(&code[..3])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn content_length(head: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// Accepts any certificate, as keepalived's SSL_GET does, but still checks
/// that the server holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connector() -> TlsConnector {
    static C: OnceLock<TlsConnector> = OnceLock::new();
    C.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        TlsConnector::from(Arc::new(cfg))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::model::StatusRange;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    fn check(urls: Vec<HttpUrl>, tls: bool) -> HttpCheck {
        HttpCheck {
            tls,
            urls,
            virtualhost: None,
            http_protocol: None,
            enable_sni: false,
        }
    }

    fn url(path: &str) -> HttpUrl {
        HttpUrl {
            path: path.into(),
            digest: None,
            status_code: Vec::new(),
            virtualhost: None,
        }
    }

    fn opts(dst: SocketAddr) -> ConnOpts {
        ConnOpts::to(dst, Duration::from_secs(2))
    }

    /// A responder answering each connection with the next of `answers`
    /// (the last repeats), recording the requests it got.
    async fn responder(answers: Vec<Vec<u8>>) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let n = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let i = n.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
                let a = answers[i].clone();
                let seen = s2.clone();
                tokio::spawn(async move {
                    let req = read_request(&mut s).await;
                    seen.lock().unwrap().push(req);
                    let _ = s.write_all(&a).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> String {
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while find_header_end(&req).is_none() {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
                Ok(Ok(n)) if n > 0 => req.extend_from_slice(&b[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&req).into_owned()
    }

    fn answer(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn md5_hex(s: &str) -> String {
        hex(&Md5::digest(s.as_bytes()))
    }

    #[tokio::test]
    async fn status_200_then_500() {
        let (addr, seen) = responder(vec![
            answer("200 OK", "ok"),
            answer("500 Internal Server Error", "no"),
        ])
        .await;
        let h = check(vec![url("/health")], false);
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::Up {
                urls: vec![("HTTP status code", "/health".into())]
            }
        );
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::down("HTTP status code error to")
        );
        let req = seen.lock().unwrap()[0].clone();
        assert_eq!(
            req,
            format!(
                "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: 127.0.0.1:{}\r\n\r\n",
                addr.port()
            )
        );
    }

    #[tokio::test]
    async fn status_ranges_and_virtualhost() {
        let (addr, seen) = responder(vec![answer("302 Found", "")]).await;
        let mut u = url("/");
        u.status_code = vec![StatusRange { min: 300, max: 302 }];
        let mut h = check(vec![u], false);
        h.virtualhost = Some("www.example.test".into());
        h.http_protocol = Some("1.1".into());
        assert!(matches!(probe(&opts(addr), &h).await, Probe::Up { .. }));
        let req = seen.lock().unwrap()[0].clone();
        assert!(req.starts_with("GET / HTTP/1.1\r\n"));
        assert!(req.contains("\r\nHost: www.example.test\r\n"));
    }

    #[tokio::test]
    async fn digest_of_the_body() {
        let body = "<html>fine</html>\n";
        // Bytes past Content-Length are not hashed.
        let mut a = answer("200 OK", body);
        a.extend_from_slice(b"trailing garbage");
        let (addr, _) = responder(vec![a]).await;
        let mut good = url("/index.html");
        good.digest = Some(md5_hex(body));
        let h = check(vec![good.clone()], false);
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::Up {
                urls: vec![("MD5 digest", "/index.html".into())]
            }
        );
        let mut bad = good;
        bad.digest = Some(md5_hex("something else"));
        // Every url must pass: the first passes, the second does not.
        let h = check(vec![url("/a"), bad], false);
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::down("MD5 digest error to")
        );
    }

    #[tokio::test]
    async fn digest_without_content_length_hashes_to_the_end() {
        let (addr, _) = responder(vec![b"HTTP/1.0 200 OK\r\n\r\nabc".to_vec()]).await;
        let mut u = url("/");
        u.digest = Some(md5_hex("abc"));
        assert!(matches!(
            probe(&opts(addr), &check(vec![u], false)).await,
            Probe::Up { .. }
        ));
    }

    #[tokio::test]
    async fn closed_port_empty_answer_and_silence() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let h = check(vec![url("/")], false);
        assert_eq!(
            probe(&opts(closed), &h).await,
            Probe::down("Error connecting")
        );
        let (addr, _) = responder(vec![Vec::new()]).await;
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::down("Read, no data received from")
        );
        // A server that accepts and never answers: the read times out.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let mut o = opts(addr);
        o.timeout = Duration::from_millis(300);
        assert_eq!(probe(&o, &h).await, Probe::down("Timeout WEB read"));
        hold.abort();
    }

    #[test]
    fn status_line_parsing() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content"), 204);
        assert_eq!(status_code(b"HTTP/1.1 204"), 204);
        assert_eq!(status_code(b"HTTP/1.1 20x OK"), 0);
        assert_eq!(status_code(b"garbage"), 0);
        assert_eq!(
            content_length(b"HTTP/1.0 200 OK\r\ncontent-length: 12"),
            Some(12)
        );
    }

    /// A TLS responder with a self-signed certificate for `name`; records
    /// the SNI each client sent.
    async fn tls_responder(
        name: &str,
        a: Vec<u8>,
    ) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Option<String>>>>) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let snis = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = snis.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let acceptor = acceptor.clone();
                let a = a.clone();
                let snis = s2.clone();
                tokio::spawn(async move {
                    let Ok(mut t) = acceptor.accept(s).await else {
                        return;
                    };
                    snis.lock()
                        .unwrap()
                        .push(t.get_ref().1.server_name().map(str::to_string));
                    read_request(&mut t).await;
                    let _ = t.write_all(&a).await;
                    let _ = t.shutdown().await;
                });
            }
        });
        (addr, snis)
    }

    #[tokio::test]
    async fn ssl_get_accepts_a_self_signed_certificate() {
        let body = "secure\n";
        let (addr, snis) = tls_responder("www.example.test", answer("200 OK", body)).await;
        let mut u = url("/");
        u.digest = Some(md5_hex(body));
        let mut h = check(vec![u], true);
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::Up {
                urls: vec![("MD5 digest", "/".into())]
            }
        );
        // SNI only with enable_sni, from the virtualhost.
        h.virtualhost = Some("www.example.test".into());
        probe(&opts(addr), &h).await;
        h.enable_sni = true;
        probe(&opts(addr), &h).await;
        assert_eq!(
            *snis.lock().unwrap(),
            vec![None, None, Some("www.example.test".to_string())]
        );
    }

    #[tokio::test]
    async fn ssl_get_against_a_plain_server_fails_the_handshake() {
        // A server that talks plain HTTP at once, whatever it is sent.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(&answer("400 Bad Request", "plain")).await;
                let _ = s.shutdown().await;
            }
        });
        let h = check(vec![url("/")], true);
        assert_eq!(
            probe(&opts(addr), &h).await,
            Probe::down("SSL handshake/communication error connecting to")
        );
    }
}
