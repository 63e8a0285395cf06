//! One replica at a time: a `coordination.k8s.io/v1` Lease held by the replica that rotates the
//! webhook's certificates and registers the webhook configurations. Admission itself needs no
//! leader: every replica answers every review.
//!
//! The holder renews the Lease every third of its duration. Another replica takes it over once
//! `renewTime + leaseDurationSeconds` has passed without a renewal. Every write carries the
//! `resourceVersion` read, so of two replicas racing for an expired Lease one wins and the other
//! gets a conflict and stays a follower. A holder that cannot renew (API unreachable) stops
//! acting as the holder one renewal period before the Lease can expire for the others, so two
//! replicas never both believe they hold it. On a graceful stop the holder releases the Lease
//! (no holder, renewTime in the past), so a successor takes over at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::error::describe;

/// The default Lease duration.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Which Lease, and who is asking.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (`holderIdentity`): the Pod name, or host and process id.
    pub identity: String,
    /// How long a renewal holds the Lease.
    pub duration: Duration,
}

/// What a replica should do with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStep {
    /// There is none: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Its holder let it expire (or released it): take it over.
    TakeOver,
    /// Someone else holds it.
    Follow {
        /// Its holder.
        holder: String,
    },
}

/// What to do with `lease` (`None`: absent) at `now` (Unix microseconds), as `identity`.
pub fn step(lease: Option<&LeaseSpec>, identity: &str, now_micros: i64) -> LeaseStep {
    let Some(spec) = lease else {
        return LeaseStep::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return LeaseStep::Renew;
    }
    if holder.is_empty() {
        return LeaseStep::TakeOver;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map_or(0, |t| t.0.as_microsecond());
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(1)) * 1_000_000;
    if now_micros >= renewed.saturating_add(duration) {
        LeaseStep::TakeOver
    } else {
        LeaseStep::Follow { holder }
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn micro_time(micros: i64) -> Option<MicroTime> {
    Timestamp::from_microsecond(micros).ok().map(MicroTime)
}

/// The identity of this process when no Pod name is known: host name and process id.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "sealgate".into());
    format!("{host}-{}", std::process::id())
}

impl LeaseConfig {
    /// Holds the Lease whenever it can until `stop` resolves, publishing on `held` whether this
    /// replica holds it now; then releases it if held.
    pub async fn run(
        self,
        client: Client,
        held: watch::Sender<bool>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        let every = (self.duration / 3).max(Duration::from_millis(100));
        let mut last_renewed: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // While held: valid until a renewal period before the others may take over.
            let valid_until = last_renewed
                .filter(|_| *held.borrow())
                .map(|t| t + self.duration.saturating_sub(every));
            let expiry = async {
                match valid_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
                _ = expiry => {
                    tracing::warn!(lease = %format_args!("{}/{}", self.namespace, self.name), "no longer holding the lease (not renewed in time)");
                    held.send_replace(false);
                    last_renewed = None;
                    continue;
                }
            }
            // An attempt gets at most a renewal period, so a slow API cannot hold the loop past
            // the moment leadership must be given up.
            // The renewal counts from before the request: the API's renewTime is no earlier.
            let started = tokio::time::Instant::now();
            let attempt = match tokio::time::timeout(every, self.attempt(&api)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "the API did not answer within {} ms",
                    every.as_millis()
                )),
            };
            match attempt {
                Ok(true) => {
                    last_renewed = Some(started);
                    if !*held.borrow() {
                        tracing::info!(lease = %format_args!("{}/{}", self.namespace, self.name), identity = %self.identity, "holding the lease: this replica rotates certificates and registers the webhook");
                    }
                    held.send_replace(true);
                }
                Ok(false) => {
                    last_renewed = None;
                    held.send_replace(false);
                }
                Err(detail) => {
                    tracing::warn!(lease = %format_args!("{}/{}", self.namespace, self.name), error = %detail, "cannot read or renew the lease");
                }
            }
        }
        if *held.borrow() {
            held.send_replace(false);
            self.release(&api).await;
        }
    }

    /// One read and, where due, one write. `Ok(true)`: held after it.
    async fn attempt(&self, api: &Api<Lease>) -> Result<bool, String> {
        let existing = api.get_opt(&self.name).await.map_err(|e| describe(&e))?;
        let now = now_micros();
        let decision = step(
            existing.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let result = match (decision, existing) {
            (LeaseStep::Follow { .. }, _) => return Ok(false),
            (LeaseStep::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: micro_time(now),
                        renew_time: micro_time(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (step, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if step == LeaseStep::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = micro_time(now);
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.renew_time = micro_time(now);
                spec.lease_duration_seconds = Some(seconds);
                api.replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(()) => Ok(true),
            // Another replica wrote first (took it over or created it): follow.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Gives the Lease up so a successor need not wait for it to expire.
    async fn release(&self, api: &Api<Lease>) {
        let Ok(Some(mut lease)) = api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = micro_time(now_micros() - 3_600_000_000);
        spec.lease_duration_seconds = Some(1);
        match api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("lease released"),
            Err(e) => {
                tracing::warn!(error = %describe(&e), "releasing the lease failed; a successor waits for it to expire")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_micros: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: micro_time(renewed_micros),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_created_renewed_followed_and_taken_over_when_it_expires() {
        let t = 1_800_000_000_000_000;
        assert_eq!(step(None, "a", t), LeaseStep::Create);
        let held_by_a = spec(Some("a"), t, 15);
        assert_eq!(step(Some(&held_by_a), "a", t + 1), LeaseStep::Renew);
        assert_eq!(
            step(Some(&held_by_a), "b", t + 14_999_999),
            LeaseStep::Follow { holder: "a".into() }
        );
        assert_eq!(
            step(Some(&held_by_a), "b", t + 15_000_000),
            LeaseStep::TakeOver
        );
        // Released: no holder.
        assert_eq!(step(Some(&spec(None, t, 15)), "b", t), LeaseStep::TakeOver);
        assert_eq!(
            step(Some(&spec(Some(""), t, 15)), "b", t),
            LeaseStep::TakeOver
        );
        // Never renewed: the acquire time counts; neither: long expired.
        let mut acquired = spec(Some("a"), t, 15);
        acquired.renew_time = None;
        acquired.acquire_time = micro_time(t);
        assert_eq!(
            step(Some(&acquired), "b", t + 1),
            LeaseStep::Follow { holder: "a".into() }
        );
        acquired.acquire_time = None;
        assert_eq!(step(Some(&acquired), "b", t), LeaseStep::TakeOver);
    }
}
