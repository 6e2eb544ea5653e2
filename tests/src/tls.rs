//! TLS for the tests: a certificate authority made by the test (rcgen) that signs server
//! certificates for 127.0.0.1 and localhost, and a client (tokio-rustls + hyper) that trusts
//! only that CA, speaks HTTP/2 or HTTP/1.1 by ALPN, keeps its connection open across
//! requests, and reports the certificate the server presented.
//!
//! Invariant: nothing here disables certificate verification; a client connection succeeds
//! only against a certificate the test CA signed for the name it dialled.

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A certificate authority of one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate the CA signed, and its key.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> anyhow::Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa { cert, key })
    }

    /// The CA certificate, PEM (what `curl --cacert` and browsers are given).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.pem()).with_context(|| format!("write {}", path.display()))
    }

    /// A new server certificate (new key) for 127.0.0.1 and localhost, named `cn`.
    pub fn issue(&self, cn: &str) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        })
    }

    /// A rustls client configuration trusting this CA only, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A rustls server configuration with `issued`, offering HTTP/1.1 (test web servers).
    pub fn server_config(issued: &Issued) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        use rustls_pki_types::{pem::PemObject, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![issued.der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl Issued {
    /// Installs the pair at `cert` and `key` the way a renewal tool should: each file
    /// written beside and renamed into place, so a reader sees an old or a new file, never
    /// half of one.
    pub fn install(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        replace(key, &self.key_pem)?;
        replace(cert, &self.cert_pem)
    }
}

/// Replaces `path`'s contents atomically (write beside, rename).
pub fn replace(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection over TLS, kept open across requests.
pub struct TlsConn {
    sender: Sender,
    /// The leaf certificate the server presented in this connection's handshake.
    pub leaf: CertificateDer<'static>,
    /// The protocol ALPN chose (`h2`, `http/1.1`), if any.
    pub alpn: Option<Vec<u8>>,
    driver: tokio::task::JoinHandle<()>,
}

impl TlsConn {
    /// Connects to `addr` as `127.0.0.1`, trusting `ca`, offering `alpn` (HTTP/2 when the
    /// server picks `h2`, HTTP/1.1 otherwise).
    pub async fn connect(addr: SocketAddr, ca: &TestCa, alpn: &[&[u8]]) -> anyhow::Result<TlsConn> {
        let connector = tokio_rustls::TlsConnector::from(ca.client_config(alpn)?);
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .context("no server certificate")?
            .clone()
            .into_owned();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        let (sender, driver) = if alpn.as_deref() == Some(b"h2") {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            (
                Sender::H2(s),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        } else {
            let (s, conn) = http1::handshake(io).await?;
            (
                Sender::H1(s),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        };
        Ok(TlsConn {
            sender,
            leaf,
            alpn,
            driver,
        })
    }

    /// POSTs `body` (JSON) to `path` on this connection: (status, body).
    pub async fn post(&mut self, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        self.post_with(path, body, &[]).await
    }

    /// [`TlsConn::post`] with extra headers.
    pub async fn post_with(
        &mut self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, String)> {
        let uri = match self.sender {
            // HTTP/2 requests carry their scheme and authority.
            Sender::H2(_) => format!("https://127.0.0.1{path}"),
            Sender::H1(_) => path.to_string(),
        };
        let mut req = hyper::Request::post(uri).header("content-type", "application/json");
        if matches!(self.sender, Sender::H1(_)) {
            req = req.header("host", "127.0.0.1");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string())))?;
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Whether the server has closed this connection (the client saw it end).
    pub fn is_closed(&self) -> bool {
        self.driver.is_finished()
            || match &self.sender {
                Sender::H1(s) => s.is_closed(),
                Sender::H2(s) => s.is_closed(),
            }
    }
}

/// The leaf certificate a new handshake with `addr` gets.
pub async fn leaf_of(addr: SocketAddr, ca: &TestCa) -> anyhow::Result<CertificateDer<'static>> {
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"])?);
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = connector
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(c) => Ok(c.clone().into_owned()),
        None => bail!("no server certificate"),
    }
}
