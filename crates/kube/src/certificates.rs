//! The webhook's CA and serving certificate in a Secret (`--tls-secret NAMESPACE/NAME`), shared
//! by every replica and rotated by the one holding the Lease of the same name ([`crate::lease`]).
//!
//! The Secret (type `kubernetes.io/tls`) holds:
//!
//! | key | what |
//! |---|---|
//! | `tls.crt`, `tls.key` | the serving certificate every replica serves |
//! | `ca.crt` | the CA bundle registered as the webhooks' `caBundle`: one CA, two during a rotation |
//! | `issuer.crt`, `ca.key` | the CA that issued `tls.crt`, and its key |
//! | `next-ca.crt`, `next-ca.key` | during the first half of a CA rotation: the CA that comes next |
//!
//! and two annotations, `sealgate.dev/bundle-changed-at` and `sealgate.dev/serving-changed-at`
//! (Unix seconds), when `ca.crt` and `tls.crt` last changed.
//!
//! A serving certificate is reissued from the same CA when a third of its validity is left or
//! when it no longer covers the names the API server calls; that needs no overlap, since the CA
//! the API server trusts does not change. A CA is replaced in three steps, each written only
//! once the previous one has had `--rotation-overlap` to reach every replica and API server, so
//! no client ever meets a certificate its bundle cannot verify (Kyverno's expired-CA outages):
//!
//! 1. **begin**: a new CA is made and added to `ca.crt` (old + new); replicas still serve the
//!    old CA's certificate;
//! 2. **promote**: once both webhook configurations carry the two-CA bundle and the overlap has
//!    passed, a serving certificate from the new CA is written;
//! 3. **retire**: once every replica has had the overlap to serve it, the old CA leaves
//!    `ca.crt`.
//!
//! [`plan`] is the pure decision (time a parameter); [`CertificateKeeper`] reads the Secret every
//! quarter overlap (at most 15 s), serves what it holds and, on the Lease holder, writes the
//! next step with the `resourceVersion` read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use sealgate_server::metrics::Metrics;
use sealgate_server::tls::{self, CertResolver, PemPair, TlsError};
use tokio::sync::watch;

use crate::error::{KubeError, describe};

const BUNDLE_CHANGED_AT: &str = "sealgate.dev/bundle-changed-at";
const SERVING_CHANGED_AT: &str = "sealgate.dev/serving-changed-at";
/// How far back a new certificate's notBefore is set, for clocks a little behind.
const BACKDATE: i64 = 60;

/// Where the certificates live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSecretRef {
    /// The Secret's (and the Lease's) namespace.
    pub namespace: String,
    /// The Secret's (and the Lease's) name.
    pub name: String,
}

impl std::fmt::Display for TlsSecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How long certificates live and how long each rotation step waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A new CA's validity (`--ca-validity`, 8760h).
    pub ca_validity: Duration,
    /// A new serving certificate's validity (`--cert-validity`, 2160h), never past its CA's.
    pub cert_validity: Duration,
    /// How long each CA rotation step waits for every replica and API server
    /// (`--rotation-overlap`, 10m).
    pub overlap: Duration,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            ca_validity: Duration::from_secs(365 * 86_400),
            cert_validity: Duration::from_secs(90 * 86_400),
            overlap: Duration::from_secs(600),
        }
    }
}

impl Schedule {
    /// How often every replica reads the Secret.
    pub fn poll(&self) -> Duration {
        (self.overlap / 4).clamp(Duration::from_millis(250), Duration::from_secs(15))
    }

    fn secs(d: Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
    }
}

/// What the Secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// `tls.crt`, `tls.key`.
    pub serving: PemPair,
    /// `issuer.crt`, `ca.key`.
    pub issuer: PemPair,
    /// `ca.crt`: the CAs to register, PEM, one after the other.
    pub bundle: String,
    /// `next-ca.crt`, `next-ca.key`.
    pub next: Option<PemPair>,
    /// When `ca.crt` last changed (Unix seconds).
    pub bundle_changed_at: i64,
    /// When `tls.crt` last changed (Unix seconds).
    pub serving_changed_at: i64,
}

/// The next write, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Keep,
    /// No usable material: a new CA and serving certificate.
    Create,
    /// A new serving certificate from the same CA.
    Reissue,
    /// A CA rotation's first step: a new CA into the bundle.
    Begin,
    /// Its second: serve a certificate of the new CA.
    Promote,
    /// Its third: the old CA leaves the bundle.
    Retire,
}

/// Facts of the first certificate of `pem`.
fn first(pem: &str) -> Option<tls::CertificateFacts> {
    tls::certificate_facts(pem).ok()?.into_iter().next()
}

/// What to do at `now` (Unix seconds) with `material` for a serving certificate valid for
/// `names`. `registered`: whether both webhook configurations carry the current bundle.
pub fn plan(
    material: Option<&Material>,
    names: &[String],
    now: i64,
    schedule: &Schedule,
    registered: bool,
) -> Step {
    let Some(m) = material else {
        return Step::Create;
    };
    let (Some(issuer), Some(serving)) = (first(&m.issuer.cert), first(&m.serving.cert)) else {
        return Step::Create;
    };
    if now >= issuer.not_after {
        // Nothing it issued verifies any more: start again.
        return Step::Create;
    }
    let overlap = Schedule::secs(schedule.overlap);
    let serving_due = serving.not_after - now < Schedule::secs(schedule.cert_validity) / 3
        || !names.iter().all(|n| serving.names.contains(n))
        || serving.issuer != issuer.subject
        || serving.not_after > issuer.not_after;
    if m.next.is_some() {
        if now - m.bundle_changed_at >= overlap && registered {
            return Step::Promote;
        }
        return if serving_due {
            Step::Reissue
        } else {
            Step::Keep
        };
    }
    let cas = tls::certificate_facts(&m.bundle).map_or(0, |c| c.len());
    if cas > 1 {
        if now - m.serving_changed_at >= overlap {
            return Step::Retire;
        }
        return if serving_due {
            Step::Reissue
        } else {
            Step::Keep
        };
    }
    if issuer.not_after - now < Schedule::secs(schedule.ca_validity) / 3 {
        return Step::Begin;
    }
    if serving_due {
        return Step::Reissue;
    }
    Step::Keep
}

/// A CA's common name: made unique by its time, so two CAs of one rotation are told apart.
fn ca_name(now: i64) -> String {
    format!(
        "sealgate webhook CA {}",
        sealgate_core::timestamp::format_rfc3339(now)
    )
}

fn new_ca(now: i64, schedule: &Schedule) -> Result<PemPair, TlsError> {
    tls::make_ca(
        &ca_name(now),
        now - BACKDATE,
        now + Schedule::secs(schedule.ca_validity),
    )
}

fn new_serving(
    issuer: &PemPair,
    names: &[String],
    now: i64,
    schedule: &Schedule,
) -> Result<PemPair, TlsError> {
    let ca_not_after = first(&issuer.cert).map_or(now, |f| f.not_after);
    let not_after = (now + Schedule::secs(schedule.cert_validity)).min(ca_not_after);
    tls::make_serving(issuer, names, now - BACKDATE, not_after)
}

/// `material` after `step`.
pub fn carry_out(
    step: Step,
    material: Option<&Material>,
    names: &[String],
    now: i64,
    schedule: &Schedule,
) -> Result<Option<Material>, TlsError> {
    let create = || -> Result<Material, TlsError> {
        let ca = new_ca(now, schedule)?;
        let serving = new_serving(&ca, names, now, schedule)?;
        Ok(Material {
            serving,
            bundle: ca.cert.clone(),
            issuer: ca,
            next: None,
            bundle_changed_at: now,
            serving_changed_at: now,
        })
    };
    let Some(m) = material else {
        return match step {
            Step::Keep => Ok(None),
            _ => create().map(Some),
        };
    };
    let mut m = m.clone();
    match step {
        Step::Keep => return Ok(None),
        Step::Create => return create().map(Some),
        Step::Reissue => {
            m.serving = new_serving(&m.issuer, names, now, schedule)?;
            m.serving_changed_at = now;
        }
        Step::Begin => {
            let next = new_ca(now, schedule)?;
            m.bundle = format!("{}{}", ensure_newline(&m.issuer.cert), next.cert);
            m.next = Some(next);
            m.bundle_changed_at = now;
        }
        Step::Promote => {
            let Some(next) = m.next.take() else {
                return Ok(None);
            };
            m.serving = new_serving(&next, names, now, schedule)?;
            m.issuer = next;
            m.serving_changed_at = now;
        }
        Step::Retire => {
            m.bundle = m.issuer.cert.clone();
            m.bundle_changed_at = now;
        }
    }
    Ok(Some(m))
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

/// Why the Secret's content is not usable material.
fn from_secret(secret: &Secret) -> Result<Material, String> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |key: &str| -> Result<String, String> {
        let bytes = data.get(key).ok_or_else(|| format!("it has no {key}"))?;
        String::from_utf8(bytes.0.clone()).map_err(|_| format!("its {key} is not PEM text"))
    };
    let pair = |cert: &str, key: &str| -> Result<PemPair, String> {
        Ok(PemPair {
            cert: text(cert)?,
            key: text(key)?,
        })
    };
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let at = |key: &str| {
        annotations
            .get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let material = Material {
        serving: pair("tls.crt", "tls.key")?,
        issuer: pair("issuer.crt", "ca.key")?,
        bundle: text("ca.crt")?,
        next: if data.contains_key("next-ca.crt") {
            Some(pair("next-ca.crt", "next-ca.key")?)
        } else {
            None
        },
        bundle_changed_at: at(BUNDLE_CHANGED_AT),
        serving_changed_at: at(SERVING_CHANGED_AT),
    };
    tls::load_pem(
        material.serving.cert.as_bytes(),
        material.serving.key.as_bytes(),
        "the Secret",
    )
    .map_err(|e| e.to_string())?;
    tls::certificate_facts(&material.bundle).map_err(|e| format!("its ca.crt: {e}"))?;
    Ok(material)
}

fn to_secret(at: &TlsSecretRef, m: &Material, resource_version: Option<String>) -> Secret {
    let mut data = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    };
    put("tls.crt", &m.serving.cert);
    put("tls.key", &m.serving.key);
    put("ca.crt", &m.bundle);
    put("issuer.crt", &m.issuer.cert);
    put("ca.key", &m.issuer.key);
    if let Some(next) = &m.next {
        put("next-ca.crt", &next.cert);
        put("next-ca.key", &next.key);
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(at.name.clone()),
            namespace: Some(at.namespace.clone()),
            resource_version,
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "sealgate".to_string(),
                )]
                .into(),
            ),
            annotations: Some(
                [
                    (
                        BUNDLE_CHANGED_AT.to_string(),
                        m.bundle_changed_at.to_string(),
                    ),
                    (
                        SERVING_CHANGED_AT.to_string(),
                        m.serving_changed_at.to_string(),
                    ),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("kubernetes.io/tls".into()),
        ..Secret::default()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Keeps the serving certificate and the registered bundle current from the Secret, and, while
/// this replica holds the Lease, the Secret itself.
#[derive(Debug)]
pub struct CertificateKeeper {
    /// The Secret.
    pub secret: TlsSecretRef,
    /// Lifetimes and overlap.
    pub schedule: Schedule,
    /// The names the serving certificate must cover.
    pub names: Vec<String>,
    /// The webhook configurations' name (checked before a new CA's certificate is served).
    pub webhook_name: String,
    /// For the CA expiry metric.
    pub metrics: Metrics,
}

/// What a replica serves and registers, as the Secret holds it now.
#[derive(Debug)]
pub struct Published {
    /// The serving certificate (handed to the server's TLS config).
    pub resolver: Arc<CertResolver>,
    /// The CA bundle to register.
    pub bundle: watch::Receiver<Vec<u8>>,
    bundle_tx: watch::Sender<Vec<u8>>,
}

impl CertificateKeeper {
    /// Waits until the Secret holds usable material (creating it when `held` says this replica
    /// holds the Lease), and returns what to serve and register from it.
    pub async fn first(
        &self,
        client: &Client,
        held: &mut watch::Receiver<bool>,
    ) -> Result<Published, KubeError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.secret.namespace);
        let mut said_waiting = false;
        loop {
            let (material, version) = self.read(&api).await?;
            if let Some(m) = material {
                let loaded = self.load(&m)?;
                let (bundle_tx, bundle) = watch::channel(m.bundle.clone().into_bytes());
                self.note_ca(&m);
                return Ok(Published {
                    resolver: Arc::new(CertResolver::from_loaded(loaded, self.metrics.clone())),
                    bundle,
                    bundle_tx,
                });
            }
            if *held.borrow() {
                self.write(&api, None, version, false).await?;
                continue;
            }
            if !said_waiting {
                tracing::info!(secret = %self.secret, "waiting for the TLS Secret (the replica holding the lease of the same name creates it)");
                said_waiting = true;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), held.changed()).await;
        }
    }

    /// Until `stop` resolves: reads the Secret every [`Schedule::poll`], serves and publishes
    /// what changed, and, while `held`, writes the next rotation step.
    pub async fn run(
        self,
        client: Client,
        published: Published,
        held: watch::Receiver<bool>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.secret.namespace);
        let mut tick = tokio::time::interval(self.schedule.poll());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_serving = String::new();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            let (material, version) = match self.read(&api).await {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the TLS Secret failed; still serving the certificate read last");
                    continue;
                }
            };
            if let Some(m) = &material {
                if m.serving.cert != last_serving {
                    match self.load(m) {
                        Ok(loaded) => {
                            let not_after = loaded.not_after;
                            published.resolver.set(loaded);
                            if !last_serving.is_empty() {
                                tracing::info!(secret = %self.secret, not_after = %sealgate_core::timestamp::format_rfc3339(not_after), "serving certificate reloaded from the Secret");
                            }
                            last_serving = m.serving.cert.clone();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the TLS Secret's certificate does not load; still serving the previous one")
                        }
                    }
                }
                self.note_ca(m);
                published.bundle_tx.send_if_modified(|b| {
                    let new = m.bundle.as_bytes();
                    (b.as_slice() != new).then(|| *b = new.to_vec()).is_some()
                });
            }
            if *held.borrow() {
                let registered = match &material {
                    Some(m) if m.next.is_some() => {
                        crate::registration::carries_bundle(&client, &self.webhook_name, &m.bundle)
                            .await
                    }
                    _ => true,
                };
                if let Err(e) = self
                    .write(&api, material.as_ref(), version, registered)
                    .await
                {
                    tracing::error!(error = %e, "rotating the webhook certificate failed; retrying");
                }
            }
        }
    }

    async fn read(
        &self,
        api: &Api<Secret>,
    ) -> Result<(Option<Material>, Option<String>), KubeError> {
        let secret = api
            .get_opt(&self.secret.name)
            .await
            .map_err(|e| KubeError::api(format!("reading the TLS Secret {}", self.secret), e))?;
        let Some(secret) = secret else {
            return Ok((None, None));
        };
        let version = secret.metadata.resource_version.clone();
        match from_secret(&secret) {
            Ok(m) => Ok((Some(m), version)),
            Err(why) => {
                tracing::error!(secret = %self.secret, problem = %why, "the TLS Secret is not usable; the replica holding the lease replaces it");
                Ok((None, version))
            }
        }
    }

    fn load(&self, m: &Material) -> Result<tls::Loaded, KubeError> {
        tls::load_pem(
            m.serving.cert.as_bytes(),
            m.serving.key.as_bytes(),
            &format!("Secret {}", self.secret),
        )
        .map_err(|e| KubeError::Certificate {
            detail: e.to_string(),
        })
    }

    fn note_ca(&self, m: &Material) {
        if let Some(earliest) = tls::certificate_facts(&m.bundle)
            .ok()
            .and_then(|cas| cas.iter().map(|c| c.not_after).min())
        {
            self.metrics.set_ca_not_after(earliest);
        }
    }

    /// Writes the next step for `material`, if one is due. A conflict (another writer) is left
    /// for the next read.
    async fn write(
        &self,
        api: &Api<Secret>,
        material: Option<&Material>,
        version: Option<String>,
        registered: bool,
    ) -> Result<(), KubeError> {
        let now = unix_now();
        let step = plan(material, &self.names, now, &self.schedule, registered);
        let Some(next) =
            carry_out(step, material, &self.names, now, &self.schedule).map_err(|e| {
                KubeError::Certificate {
                    detail: e.to_string(),
                }
            })?
        else {
            return Ok(());
        };
        let exists = version.is_some();
        let secret = to_secret(&self.secret, &next, version);
        let result = if exists {
            api.replace(&self.secret.name, &PostParams::default(), &secret)
                .await
        } else {
            api.create(&PostParams::default(), &secret).await
        };
        match result {
            Ok(_) => {
                tracing::info!(secret = %self.secret, step = ?step, "webhook certificates: {}", describe_step(step));
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(KubeError::Api {
                action: format!("writing the TLS Secret {}", self.secret),
                detail: describe(&e),
            }),
        }
    }
}

fn describe_step(step: Step) -> &'static str {
    match step {
        Step::Keep => "unchanged",
        Step::Create => "a new CA and serving certificate made",
        Step::Reissue => "the serving certificate reissued from the same CA",
        Step::Begin => "CA rotation begun: the new CA added to the bundle beside the old one",
        Step::Promote => {
            "CA rotation: serving a certificate of the new CA (both CAs still registered)"
        }
        Step::Retire => "CA rotation done: the old CA left the bundle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["sealgate.sealgate.svc".into(), "127.0.0.1".into()]
    }

    fn schedule() -> Schedule {
        Schedule {
            ca_validity: Duration::from_secs(3000),
            cert_validity: Duration::from_secs(900),
            overlap: Duration::from_secs(60),
        }
    }

    fn run(m: Option<&Material>, now: i64, registered: bool) -> (Step, Option<Material>) {
        let s = schedule();
        let step = plan(m, &names(), now, &s, registered);
        let next = carry_out(step, m, &names(), now, &s).unwrap();
        (step, next)
    }

    fn cas(m: &Material) -> Vec<String> {
        tls::certificate_facts(&m.bundle)
            .unwrap()
            .into_iter()
            .map(|c| c.subject)
            .collect()
    }

    /// Walks a CA's whole life, checking at every step that what is served verifies with what
    /// is registered before and after the write.
    #[test]
    fn a_ca_rotation_never_serves_a_certificate_outside_the_registered_bundle() {
        let t0 = 1_800_000_000;
        let (step, m) = run(None, t0, true);
        assert_eq!(step, Step::Create);
        let mut m = m.unwrap();
        assert_eq!(cas(&m).len(), 1);
        let first_ca = cas(&m)[0].clone();
        assert_eq!(first(&m.serving.cert).unwrap().issuer, first_ca);
        assert_eq!(run(Some(&m), t0 + 10, true).0, Step::Keep);

        let mut now = t0;
        let mut seen = Vec::new();
        // Step through 2.5 CA lifetimes, 30 s at a time.
        while now < t0 + 7500 {
            now += 30;
            let (step, next) = run(Some(&m), now, true);
            if let Some(next) = next {
                // Whatever is served before or after the write verifies with both the bundle
                // registered before it and the bundle registered after it.
                let served_issuer = |x: &Material| first(&x.serving.cert).unwrap().issuer;
                for served in [served_issuer(&m), served_issuer(&next)] {
                    for bundle in [cas(&m), cas(&next)] {
                        if step == Step::Create {
                            continue;
                        }
                        assert!(
                            bundle.contains(&served),
                            "{step:?} at {now}: {served} outside {bundle:?}"
                        );
                    }
                }
                let serving = first(&next.serving.cert).unwrap();
                assert!(serving.not_after > now, "{step:?}");
                assert!(names().iter().all(|n| serving.names.contains(n)));
                seen.push(step);
                m = next;
            }
        }
        assert!(!seen.contains(&Step::Create), "{seen:?}");
        for step in [Step::Begin, Step::Promote, Step::Retire, Step::Reissue] {
            assert!(seen.contains(&step), "{step:?} never happened: {seen:?}");
        }
        // The steps of a rotation come in order, each an overlap after the previous one.
        let order: Vec<Step> = seen
            .iter()
            .copied()
            .filter(|s| *s != Step::Reissue)
            .collect();
        assert_eq!(&order[..3], &[Step::Begin, Step::Promote, Step::Retire]);
        assert_ne!(cas(&m)[0], first_ca, "the CA was replaced");
    }

    #[test]
    fn a_new_ca_is_not_served_until_the_webhooks_carry_it() {
        let t0 = 1_800_000_000;
        let m = run(None, t0, true).1.unwrap();
        let began = carry_out(Step::Begin, Some(&m), &names(), t0 + 100, &schedule())
            .unwrap()
            .unwrap();
        assert_eq!(cas(&began).len(), 2);
        assert_eq!(run(Some(&began), t0 + 130, true).0, Step::Keep, "overlap");
        assert_eq!(
            run(Some(&began), t0 + 200, false).0,
            Step::Keep,
            "not registered"
        );
        assert_eq!(run(Some(&began), t0 + 200, true).0, Step::Promote);
    }

    #[test]
    fn new_names_and_a_broken_or_expired_secret_are_handled() {
        let t0 = 1_800_000_000;
        let m = run(None, t0, true).1.unwrap();
        let more = vec!["sealgate.sealgate.svc".into(), "webhook.example".into()];
        assert_eq!(
            plan(Some(&m), &more, t0 + 5, &schedule(), true),
            Step::Reissue
        );
        assert_eq!(run(Some(&m), t0 + 4000, true).0, Step::Create, "CA expired");
        let mut broken = m.clone();
        broken.issuer.cert = "garbage".into();
        assert_eq!(run(Some(&broken), t0 + 5, true).0, Step::Create);
        // The Secret round-trips, and one that lost a key is refused with its name.
        let at = TlsSecretRef {
            namespace: "sealgate".into(),
            name: "sealgate-tls".into(),
        };
        let secret = to_secret(&at, &m, None);
        assert_eq!(from_secret(&secret).unwrap(), m);
        let mut lost = secret.clone();
        lost.data.as_mut().unwrap().remove("ca.key");
        assert_eq!(from_secret(&lost).unwrap_err(), "it has no ca.key");
        let mut swapped = secret;
        let other = run(None, t0, true).1.unwrap();
        swapped
            .data
            .as_mut()
            .unwrap()
            .insert("tls.key".into(), ByteString(other.serving.key.into_bytes()));
        assert!(
            from_secret(&swapped)
                .unwrap_err()
                .contains("does not belong"),
            "a key of another certificate"
        );
    }
}
