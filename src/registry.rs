//! A client of the Confluent Schema Registry HTTP API: writer schemas by id (cached: an id's
//! schema never changes) and a subject's latest schema.
//!
//! Transient failures (connection refused, timeouts, 5xx, 429) are retried with backoff; an
//! id the registry does not know (HTTP 404) is an answer, not an error: the records that use it
//! become dead letters. Credentials are sent as HTTP basic auth and never logged or echoed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use crate::config::RegistryConfig;
use crate::error::{BoxError, ContextError, Error, Result};

/// Requests tried per lookup before giving up.
const ATTEMPTS: u32 = 6;
/// The registry's content type.
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/json";

/// A subject's registered schema.
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectSchema {
    /// The subject.
    pub subject: String,
    /// The schema's global id.
    pub id: u32,
    /// The subject's version number.
    pub version: u32,
    /// The schema text.
    pub schema: String,
    /// `AVRO` (absent), `JSON` or `PROTOBUF`.
    #[serde(rename = "schemaType", default)]
    pub schema_type: Option<String>,
}

/// Why the registry has no usable Avro schema under an id (an answer, not a failure: the
/// records that use the id become dead letters with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoSchema {
    /// The registry does not know the id (HTTP 404).
    #[error("schema id {id} is not in the schema registry")]
    Unknown {
        /// The id.
        id: u32,
    },
    /// The id names a schema of another type.
    #[error("schema id {id} is a {kind} schema, not Avro")]
    NotAvro {
        /// The id.
        id: u32,
        /// `JSON` or `PROTOBUF`.
        kind: String,
    },
}

#[derive(Deserialize)]
struct ById {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

/// A schema registry.
#[derive(Debug)]
pub struct SchemaRegistry {
    client: reqwest::Client,
    base: url::Url,
    username: Option<String>,
    password: Option<String>,
    by_id: Mutex<HashMap<u32, String>>,
}

impl SchemaRegistry {
    /// A client for the configured registry.
    pub fn new(config: &RegistryConfig) -> Result<Self> {
        // reqwest's rustls needs a process-wide crypto provider; another client may have
        // installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::Registry {
                url: config.url.to_string(),
                source: ContextError::new(format!("cannot read ca_file `{}`", ca.display()), e)
                    .into(),
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| Error::Registry {
                url: config.url.to_string(),
                source: ContextError::new(
                    format!("ca_file `{}` is not a PEM certificate", ca.display()),
                    e,
                )
                .into(),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| Error::Registry {
            url: config.url.to_string(),
            source: e.into(),
        })?;
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(SchemaRegistry {
            client,
            base,
            username: config.username.clone(),
            password: config.password.clone(),
            by_id: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's address (without credentials).
    pub fn url(&self) -> &url::Url {
        &self.base
    }

    /// The Avro schema registered under `id`: `Ok(Err(why))` when the registry does not
    /// have it (or it is not Avro).
    pub async fn schema_by_id(&self, id: u32) -> Result<std::result::Result<String, NoSchema>> {
        if let Some(s) = self.cached(id) {
            return Ok(Ok(s));
        }
        let Some(found) = self.get::<ById>(&format!("schemas/ids/{id}")).await? else {
            return Ok(Err(NoSchema::Unknown { id }));
        };
        if let Some(kind) = found.schema_type.filter(|t| t != "AVRO") {
            return Ok(Err(NoSchema::NotAvro { id, kind }));
        }
        if let Ok(mut cache) = self.by_id.lock() {
            cache.insert(id, found.schema.clone());
        }
        Ok(Ok(found.schema))
    }

    fn cached(&self, id: u32) -> Option<String> {
        self.by_id.lock().ok().and_then(|c| c.get(&id).cloned())
    }

    /// The latest schema registered under `subject`.
    pub async fn latest(&self, subject: &str) -> Result<SubjectSchema> {
        let encoded =
            percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC);
        let found = self
            .get::<SubjectSchema>(&format!("subjects/{encoded}/versions/latest"))
            .await?;
        let found = found.ok_or_else(|| Error::Registry {
            url: self.base.to_string(),
            source: format!("subject `{subject}` has no schema in the registry").into(),
        })?;
        if let Some(t) = found.schema_type.as_deref().filter(|t| *t != "AVRO") {
            return Err(Error::Registry {
                url: self.base.to_string(),
                source: format!("subject `{subject}`'s latest schema is {t}, not Avro").into(),
            });
        }
        Ok(found)
    }

    /// GET `path`: `None` on 404; transient failures retried.
    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<Option<T>> {
        let url = self.base.join(path).map_err(|e| Error::Registry {
            url: self.base.to_string(),
            source: e.into(),
        })?;
        let fail = |source: BoxError| Error::Registry {
            url: url.to_string(),
            source,
        };
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let mut request = self.client.get(url.clone()).header("Accept", ACCEPT);
            if let Some(user) = &self.username {
                request = request.basic_auth(user, self.password.as_deref());
            }
            let outcome = request.send().await;
            let retry_reason = match outcome {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let body = response.bytes().await.map_err(|e| fail(e.into()))?;
                        return serde_json::from_slice(&body)
                            .map(Some)
                            .map_err(|e| fail(ContextError::new("unexpected answer", e).into()));
                    }
                    if status == reqwest::StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    if status == reqwest::StatusCode::UNAUTHORIZED
                        || status == reqwest::StatusCode::FORBIDDEN
                    {
                        return Err(fail(format!(
                            "{status}: check schema_registry.username and schema_registry.password"
                        ).into()));
                    }
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        return Err(fail(status.to_string().into()));
                    }
                    status.to_string()
                }
                Err(e) => {
                    let reason = without_url(&e);
                    if is_certificate_problem(&e) {
                        // Not transient: retrying cannot make the certificate trusted.
                        return Err(fail(format!(
                            "{reason}; set schema_registry.ca_file to the PEM of the CA that signed the registry's certificate"
                        ).into()));
                    }
                    reason
                }
            };
            if attempt >= ATTEMPTS {
                return Err(fail(
                    format!("{retry_reason} (after {attempt} attempts)").into(),
                ));
            }
            tracing::warn!(url = %url, attempt, reason = %retry_reason, "schema registry request failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }
}

/// Whether TLS failed on the server's certificate (unknown issuer, expired, wrong name…):
/// rustls's error, found in `e`'s causes (an I/O error carries it inside, not as a source).
fn is_certificate_problem(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
                    | rustls::Error::InvalidCertRevocationList(_)
            );
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && is_certificate_problem(inner)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// A reqwest error's message without the URL (which the caller adds once).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(&format!(" ({u})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
