//! HTTPS on the listeners: the certificate and key from PEM files (`[tls] cert`, `key`),
//! the rustls server configuration (HTTP/2 and HTTP/1.1 offered by ALPN), and the reload of
//! both files on SIGHUP.
//!
//! A [`Certificates`] is the certificate resolver of every handshake: each new handshake
//! reads the current pair, so a reload changes what new connections are given while open
//! connections keep the session they negotiated.
//!
//! Invariant: a handshake is only ever given a complete certificate chain with *its* private
//! key. A pair is loaded whole (both files read, parsed, the key checked against the leaf
//! certificate) before it replaces the current one, so a missing, unreadable, garbled or
//! mismatched replacement (say, a renewal caught between writing the chain and the key)
//! leaves the old pair serving, and is reported.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::shutdown::Shutdown;

/// ALPN protocol ids, in the server's order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{key} {path}: cannot read: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tls.cert {path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{key} {path}: not valid PEM: {reason}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "tls.key {path}: no PEM private key in it (expected -----BEGIN PRIVATE KEY-----, \
         RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey { path: PathBuf },
    #[error("tls.key {path}: the private key cannot be used: {source}")]
    UnusableKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "tls.cert {cert} and tls.key {key} do not match: the key is not the one of the first \
         (leaf) certificate"
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("tls.cert {path}: {source}")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The certificate chain and key currently served, and where they are read from.
#[derive(Debug)]
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the pair from `cert` (PEM chain, leaf first) and `key` (PEM private key).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(cert, key, &provider)?;
        Ok(Arc::new(Certificates {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads both files again; on success new handshakes use the new pair, on failure the
    /// pair served so far stays (and the error says why).
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert_path, &self.key_path, &self.provider)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(pair);
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The pair a handshake starting now gets.
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A rustls server configuration resolving every handshake through `self`, offering
    /// HTTP/2 then HTTP/1.1 by ALPN (or only HTTP/1.1 when `http2` is off).
    pub fn server_config(self: &Arc<Self>, http2: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = if http2 {
            vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
        } else {
            vec![ALPN_HTTP1.to_vec()]
        };
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads, parses and checks one certificate/key pair.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |name: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            key: name,
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_error =
        |name: &'static str, path: &Path, e: rustls_pki_types::pem::Error| TlsError::Pem {
            key: name,
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
    let cert_pem = read("tls.cert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("tls.cert", cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key_pem = read("tls.key", key)?;
    let private = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_path_buf(),
            })
        }
        Err(e) => return Err(pem_error("tls.key", key, e)),
    };
    match CertifiedKey::from_der(chain, private, provider) {
        Ok(pair) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }),
        Err(source @ rustls::Error::General(_)) => Err(TlsError::UnusableKey {
            path: key.to_path_buf(),
            source,
        }),
        Err(source) => Err(TlsError::BadCertificate {
            path: cert.to_path_buf(),
            source,
        }),
    }
}

/// SIGHUP, registered at start-up (before the listeners report themselves) so that a
/// reload signal is never the default action, which ends the process.
pub struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    pub fn register() -> std::io::Result<Hangup> {
        Ok(Hangup {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> Option<()> {
        #[cfg(unix)]
        return self.signal.recv().await;
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

/// Reloads `certs` on every SIGHUP until `stop` fires. Without TLS a SIGHUP is logged and
/// otherwise ignored.
pub async fn reload_on_hangup(
    mut hangup: Hangup,
    certs: Option<Arc<Certificates>>,
    mut stop: Shutdown,
) {
    while let Some(Some(())) = stop.or(hangup.recv()).await {
        let Some(certs) = &certs else {
            tracing::info!("SIGHUP: no TLS certificate configured, nothing to reload");
            continue;
        };
        match certs.reload() {
            Ok(()) => tracing::info!(
                cert = %certs.cert_path().display(),
                key = %certs.key_path().display(),
                "SIGHUP: TLS certificate reloaded; new handshakes use it, open connections \
                 keep theirs"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "SIGHUP: TLS certificate NOT reloaded; still serving the one loaded before"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    #[test]
    fn clear_errors_for_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair("localhost");
        let (_, other_key) = pair("localhost");
        let cert = write(dir.path(), "cert.pem", &cert);
        let key = write(dir.path(), "key.pem", &key);
        let other = write(dir.path(), "other.pem", &other_key);
        let garbage = write(dir.path(), "garbage.pem", "not pem at all\n");
        let missing = dir.path().join("missing.pem");

        assert!(Certificates::load(&cert, &key).is_ok());
        let err = |c: &Path, k: &Path| {
            Certificates::load(c, k)
                .map(|_| ())
                .expect_err("refused")
                .to_string()
        };
        let e = err(&missing, &key);
        assert!(e.contains("tls.cert") && e.contains("cannot read"), "{e}");
        let e = err(&cert, &missing);
        assert!(e.contains("tls.key") && e.contains("cannot read"), "{e}");
        let e = err(&garbage, &key);
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = err(&cert, &garbage);
        assert!(e.contains("no PEM private key"), "{e}");
        let e = err(&key, &key);
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = err(&cert, &other);
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_current_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c1, k1) = pair("one.test");
        let cert = write(dir.path(), "cert.pem", &c1);
        let key = write(dir.path(), "key.pem", &k1);
        let certs = Certificates::load(&cert, &key).expect("load");
        let before = certs.current().cert.clone();

        // A renewal caught halfway: the new chain is written, the key is still the old one.
        let (c2, k2) = pair("two.test");
        write(dir.path(), "cert.pem", &c2);
        let e = certs.reload().expect_err("mismatch").to_string();
        assert!(e.contains("do not match"), "{e}");
        assert_eq!(certs.current().cert, before, "the old pair stays");

        write(dir.path(), "key.pem", &k2);
        certs.reload().expect("reload");
        assert_ne!(certs.current().cert, before, "the new pair serves");
    }
}
