//! TLS with libpq's meaning of `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, on rustls
//! (the ring provider: no OpenSSL needed).
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow` | only if the server refuses a plain connection | no |
//! | `prefer` (default) | if the server offers TLS | no |
//! | `require` | always | no; with a root certificate, as `verify-ca` |
//! | `verify-ca` | always | signed by a root certificate |
//! | `verify-full` | always | signed by a root certificate, for the host name connected to |
//!
//! Root certificates come from `sslrootcert`: a PEM file, or `system` for the platform's store
//! (then `verify-full` is the default, and a weaker `sslmode` is an error, as in libpq 16).
//! Without it, `~/.postgresql/root.crt` is used when it exists. `sslcert` and `sslkey` (PEM;
//! default `~/.postgresql/postgresql.crt` and `.key` when both exist) present a client
//! certificate. Unix sockets never use TLS, whatever `sslmode` says, as with libpq.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::Error;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first; TLS (unverified) only when the server refuses the plain connection.
    Allow,
    /// TLS when the server offers it, unverified; plain otherwise. The default.
    #[default]
    Prefer,
    /// Always TLS; the certificate is checked as by `VerifyCa` only when a root certificate
    /// is given or `~/.postgresql/root.crt` exists.
    Require,
    /// Always TLS, with a certificate signed by a root certificate.
    VerifyCa,
    /// Always TLS, with a certificate signed by a root certificate and valid for the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling.
    pub fn parse(text: &str) -> Result<SslMode, Error> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::Config(format!(
                    "sslmode={other}: use disable, allow, prefer, require, verify-ca or \
                     verify-full"
                )));
            }
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where root certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more certificates.
    File(PathBuf),
    /// The platform's certificate store (`sslrootcert=system`).
    System,
}

/// The TLS part of the connection settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`, or the default `~/.postgresql/root.crt` when it exists.
    pub root_cert: Option<RootCert>,
    /// `sslcert`: a client certificate (PEM), presented with `key`.
    pub cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

/// How a connection attempt checks the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Encrypt, check nothing (libpq's `require` without a root certificate).
    Nothing,
    /// The chain to a root certificate, not the name.
    Chain,
    /// The chain and the host name.
    Full,
}

impl Tls {
    /// libpq's defaults and rules applied: the home directory's files, `system` roots, the
    /// modes they allow. `mode_given` says whether `sslmode` was set (else `system` roots make
    /// it `verify-full`).
    pub(crate) fn resolved(mut self, mode_given: bool, home: Option<&Path>) -> Result<Tls, Error> {
        let dir = home.map(|home| home.join(".postgresql"));
        if self.root_cert.is_none() {
            self.root_cert = dir
                .as_ref()
                .map(|dir| dir.join("root.crt"))
                .filter(|path| path.exists())
                .map(RootCert::File);
        }
        if self.cert.is_none()
            && self.key.is_none()
            && let Some(dir) = &dir
        {
            let (cert, key) = (dir.join("postgresql.crt"), dir.join("postgresql.key"));
            if cert.exists() && key.exists() {
                self.cert = Some(cert);
                self.key = Some(key);
            }
        }
        if self.root_cert == Some(RootCert::System) {
            if !mode_given {
                self.mode = SslMode::VerifyFull;
            } else if self.mode != SslMode::VerifyFull {
                return Err(Error::Config(format!(
                    "sslrootcert=system needs sslmode=verify-full, not {}: a certificate from \
                     the platform's store proves nothing unless it names the host",
                    self.mode.as_str()
                )));
            }
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(Error::Config(
                "a client certificate needs both sslcert and sslkey".into(),
            ));
        }
        Ok(self)
    }

    /// What a TLS connection checks under this mode.
    pub(crate) fn check(&self) -> Result<Check, Error> {
        match (self.mode, &self.root_cert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Err(Error::Config(format!(
                "sslmode={} needs a root certificate: set sslrootcert to a PEM file or to \
                 system (there is no ~/.postgresql/root.crt)",
                self.mode.as_str()
            ))),
            (SslMode::VerifyFull, Some(_)) => Ok(Check::Full),
            (SslMode::VerifyCa | SslMode::Require, Some(_)) => Ok(Check::Chain),
            _ => Ok(Check::Nothing),
        }
    }

    /// The connector for one connection attempt. Files are read each time, so that a renewed
    /// certificate is used from the next connection on.
    pub(crate) fn connector(&self, check: Check) -> Result<MakeRustlsConnect, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Config(format!("TLS: {error}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(Unchecked(provider)),
            Check::Chain | Check::Full => {
                let roots = self.roots()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|error| Error::Config(format!("TLS root certificates: {error}")))?;
                match check {
                    Check::Full => webpki,
                    _ => Arc::new(ChainOnly(webpki)),
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|error| file_error("sslcert", cert, error))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|error| file_error("sslkey", key, error))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| Error::Config(format!("sslcert/sslkey: {error}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, Error> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(RootCert::File(path)) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|error| file_error("sslrootcert", path, error))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::Config(format!(
                        "sslrootcert={}: no certificate in it",
                        path.display()
                    )));
                }
            }
            Some(RootCert::System) => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(Error::Config(
                        "sslrootcert=system: the platform's certificate store is empty".into(),
                    ));
                }
            }
            None => {}
        }
        Ok(roots)
    }
}

fn file_error(key: &str, path: &Path, error: impl std::fmt::Display) -> Error {
    Error::Config(format!("{key}={}: {error}", path.display()))
}

/// Accepts any certificate (`prefer`, `allow`, `require` without a root certificate), while the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
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

/// `verify-ca`: the chain must lead to a root certificate; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name: an error about the name means the chain held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
