//! smtp_alert: mails about state changes to `notification_email`, through
//! `smtp_server`, from `notification_email_from` (default `USER@HOSTNAME`,
//! as keepalived), in plain SMTP as keepalived speaks it. Every send runs in
//! its own task, bounded by `smtp_connect_timeout`; checks never wait on it.

use ferrovs_config::model::GlobalDefs;
use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// The local host name (keepalived's get_local_name), used for the
/// default router_id, sender and HELO name.
pub fn local_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// router_id, which keepalived defaults to the host name.
pub fn router_id(g: &GlobalDefs) -> String {
    g.router_id.clone().unwrap_or_else(local_name)
}

/// Why a mail was not sent (logged; a check never waits for it).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message could not be built (an address lettre refuses).
    #[error(transparent)]
    Message(#[from] lettre::error::Error),
    /// The SMTP exchange failed.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The whole exchange outlived three times `smtp_connect_timeout`.
    #[error("timeout")]
    Timeout,
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl Mailer {
    /// None when no mail is to be sent: no smtp_server, or nobody to
    /// write to (keepalived's smtp_alert checks both).
    pub fn from_global(g: &GlobalDefs) -> Option<Mailer> {
        let server = g.smtp_server.as_ref()?;
        let to: Vec<Mailbox> = g
            .notification_email
            .iter()
            .filter_map(|a| match a.parse() {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!("notification_email {a}: {e} - ignoring");
                    None
                }
            })
            .collect();
        if to.is_empty() {
            return None;
        }
        let host = local_name();
        let from_text = g.notification_email_from.clone().unwrap_or_else(|| {
            let user = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| "root".into());
            format!("{user}@{host}")
        });
        let from = match from_text.parse() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("notification_email_from {from_text}: {e} - no mails");
                return None;
            }
        };
        // A host name that is an address literal is used as is.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            server.host.trim_matches(['[', ']']),
        )
        .port(server.port)
        .timeout(Some(g.smtp_connect_timeout))
        .hello_name(ClientId::Domain(host))
        .build();
        Some(Mailer {
            transport,
            from,
            to,
            timeout: g.smtp_connect_timeout,
        })
    }

    /// Sends one mail; the whole exchange is bounded.
    pub async fn send(&self, subject: &str, body: &str) -> Result<(), MailError> {
        let mut b = Message::builder().from(self.from.clone()).subject(subject);
        for t in &self.to {
            b = b.to(t.clone());
        }
        let msg = b.body(body.to_string())?;
        match tokio::time::timeout(self.timeout * 3, self.transport.send(msg)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(MailError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::model::SmtpServer;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// Speaks just enough SMTP to take one message; returns its DATA.
    async fn smtp_sink(l: TcpListener) -> String {
        let (s, _) = l.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                }
                continue;
            }
            let cmd = line.to_ascii_uppercase();
            if cmd.starts_with("DATA") {
                in_data = true;
                w.write_all(b"354 go on\r\n").await.unwrap();
            } else if cmd.starts_with("QUIT") {
                w.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                w.write_all(b"250 ok\r\n").await.unwrap();
            }
        }
        data
    }

    #[tokio::test]
    async fn sends_keepalived_s_alert() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let sink = tokio::spawn(smtp_sink(l));
        let g = GlobalDefs {
            notification_email: vec!["ops@example.test".into()],
            notification_email_from: Some("lb@example.test".into()),
            smtp_server: Some(SmtpServer {
                host: "127.0.0.1".into(),
                port,
            }),
            smtp_connect_timeout: Duration::from_secs(3),
            ..GlobalDefs::default()
        };
        let m = Mailer::from_global(&g).expect("configured");
        m.send(
            "[lb1] Realserver [198.18.1.11]:tcp:80 of virtual server [198.18.0.100]:tcp:80 - DOWN",
            "=> TCP CHECK failed on service <=",
        )
        .await
        .unwrap();
        let data = tokio::time::timeout(Duration::from_secs(5), sink)
            .await
            .unwrap()
            .unwrap();
        // Long header lines come folded (RFC 5322); unfold them.
        let data = data.replace("\r\n ", " ");
        assert!(data.contains("Subject: [lb1] Realserver [198.18.1.11]:tcp:80 of virtual server [198.18.0.100]:tcp:80 - DOWN"), "{data}");
        assert!(data.contains("From: lb@example.test"), "{data}");
        assert!(data.contains("To: ops@example.test"), "{data}");
        assert!(data.contains("=> TCP CHECK failed on service <="), "{data}");
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let g = GlobalDefs {
            notification_email: vec!["ops@example.test".into()],
            smtp_server: Some(SmtpServer {
                host: "127.0.0.1".into(),
                port,
            }),
            smtp_connect_timeout: Duration::from_secs(1),
            ..GlobalDefs::default()
        };
        let m = Mailer::from_global(&g).unwrap();
        let start = std::time::Instant::now();
        assert!(m.send("s", "b").await.is_err());
        assert!(start.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn no_mailer_without_server_or_recipients() {
        let mut g = GlobalDefs::default();
        assert!(Mailer::from_global(&g).is_none());
        g.smtp_server = Some(SmtpServer {
            host: "127.0.0.1".into(),
            port: 25,
        });
        assert!(Mailer::from_global(&g).is_none());
    }
}
