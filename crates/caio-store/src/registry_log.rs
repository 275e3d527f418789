//! The registry in the log: every registration and deprecation is an entry
//! of the trace log (who, when, which contract by its canonical digest, and
//! the digest of the whole registry after the change), so that the log says
//! which contracts each later decision was made against, and a registry row
//! edited behind the store's back contradicts an entry of the chain.
//!
//! This module only describes and replays changes; the backends write the
//! entries in the same transaction as the rows they describe. It must never
//! trust a row it is checking: digests are recomputed from the rows' bodies.

use std::collections::BTreeMap;

use caio_calculus::contract::Contract;
use caio_calculus::registry::content_digest;
use caio_calculus::rules::service_view;
use caio_calculus::trace::{Body, Trace, canonical_digest, link_hash};
use serde::{Deserialize, Serialize};

use crate::{ServiceRecord, StoreError};

/// Who made changes that predate the registry's entries in the log: a
/// store written by an older caio gets one entry per existing row, by this
/// name, when it is first opened.
pub const MIGRATION_ACTOR: &str = "caio (migration 2: registry into the log)";

/// One change of the registry, as its log entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryChange {
    /// `register` or `deprecate`.
    pub event: String,
    /// The service.
    pub service: String,
    /// The version registered (none for a deprecation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The registered contract's canonical digest (none for a deprecation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Who made the change: the administrator's token subject.
    pub by: String,
    /// When, seconds since the epoch.
    pub at: u64,
    /// The digest of the whole registry after the change
    /// ([`RegistryState::digest`]).
    pub registry: String,
}

/// The body of a registry entry: `{"registry_change": {...}}`, a key no
/// decision's body has.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    registry_change: RegistryChange,
}

impl RegistryChange {
    /// The entry of a registration; `registry`: the digest of the registry
    /// after it ([`RegistryState::digest`]).
    pub fn registration(
        service: &str,
        version: &str,
        digest: &str,
        by: &str,
        at: u64,
        registry: String,
    ) -> RegistryChange {
        RegistryChange {
            event: "register".into(),
            service: service.to_string(),
            version: Some(version.to_string()),
            digest: Some(digest.to_string()),
            by: by.to_string(),
            at,
            registry,
        }
    }

    /// The entry of a deprecation; `registry` as for [`RegistryChange::registration`].
    pub fn deprecation(service: &str, by: &str, at: u64, registry: String) -> RegistryChange {
        RegistryChange {
            event: "deprecate".into(),
            service: service.to_string(),
            version: None,
            digest: None,
            by: by.to_string(),
            at,
            registry,
        }
    }

    /// The log entry's body.
    pub fn body(&self) -> Body {
        Body::encode(&Entry { registry_change: self.clone() }).expect("a registry change has a canonical JSON form")
    }

    /// The change a log entry records, if it is a registry entry.
    pub fn of(trace: &Trace) -> Option<RegistryChange> {
        if !trace.body.as_str().starts_with("{\"registry_change\":") {
            return None;
        }
        serde_json::from_str::<Entry>(trace.body.as_str()).ok().map(|entry| entry.registry_change)
    }
}

/// The configuration a server started with, as its log entry records it:
/// the policy and the key configuration by the SHA-256 of their text (the
/// texts themselves are kept by digest, [`crate::Store::text`]), and the
/// log's checkpoint key. Decisions after the entry were made under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// Hex SHA-256 of the policy file's text (of no text without one).
    pub policy: String,
    /// Hex SHA-256 of the key configuration's text (issuer, audience,
    /// token keys).
    pub auth: String,
    /// The verifier key of the log's checkpoints, if it signs any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
    /// Who started it.
    pub by: String,
    /// When, seconds since the epoch.
    pub at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigEntry {
    config_change: ConfigChange,
}

impl ConfigChange {
    /// The change for these texts.
    pub fn of(policy: &str, auth: &str, log_key: Option<String>, by: &str, at: u64) -> ConfigChange {
        ConfigChange { policy: text_digest(policy), auth: text_digest(auth), log_key, by: by.to_string(), at }
    }

    /// The log entry's body: `{"config_change": {...}}`.
    pub fn body(&self) -> Body {
        Body::encode(&ConfigEntry { config_change: self.clone() }).expect("a configuration has a canonical JSON form")
    }

    /// The configuration a log entry records, if it is a configuration entry.
    pub fn read(trace: &Trace) -> Option<ConfigChange> {
        if !trace.body.as_str().starts_with("{\"config_change\":") {
            return None;
        }
        serde_json::from_str::<ConfigEntry>(trace.body.as_str()).ok().map(|entry| entry.config_change)
    }
}

/// Hex SHA-256 of a text: its address among the kept texts.
pub fn text_digest(text: &str) -> String {
    use sha2::Digest;
    caio_calculus::trace::hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// What the log says the registry is: for each service, its versions'
/// digests and whether it is deprecated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryState {
    services: BTreeMap<String, ServiceState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct ServiceState {
    versions: BTreeMap<String, String>,
    deprecated: bool,
}

impl RegistryState {
    /// The state of stored records, with each version's digest recomputed
    /// from its contract (never read from the row), so that an edited body
    /// shows.
    pub fn of_records(records: &[ServiceRecord]) -> RegistryState {
        let mut state = RegistryState::default();
        for record in records {
            let service = state.services.entry(record.id.clone()).or_default();
            service.deprecated = record.deprecated_at.is_some();
            for version in &record.versions {
                service.versions.insert(version.version.clone(), contract_digest(&version.contract));
            }
        }
        state
    }

    /// Hex SHA-256 of the state's canonical JSON.
    pub fn digest(&self) -> String {
        canonical_digest(&serde_json::to_value(self).expect("a registry state has a JSON form"))
    }

    /// Applies a change as the store does: a registration adds a version
    /// (a version registered twice is refused) and makes the service active
    /// again; a deprecation needs a registered service.
    pub fn apply(&mut self, change: &RegistryChange) -> Result<(), String> {
        match (change.event.as_str(), &change.version, &change.digest) {
            ("register", Some(version), Some(digest)) => {
                let service = self.services.entry(change.service.clone()).or_default();
                if service.versions.insert(version.clone(), digest.clone()).is_some() {
                    return Err(format!("registers `{}` version {version} a second time", change.service));
                }
                service.deprecated = false;
                Ok(())
            }
            ("deprecate", None, None) => match self.services.get_mut(&change.service) {
                Some(service) => {
                    service.deprecated = true;
                    Ok(())
                }
                None => Err(format!("deprecates `{}`, which was never registered", change.service)),
            },
            _ => Err(format!("is a registry change of unknown shape (event `{}`)", change.event)),
        }
    }

    /// The digest the state gives a version, if it has it.
    fn version_digest(&self, service: &str, version: &str) -> Option<&str> {
        self.services.get(service)?.versions.get(version).map(String::as_str)
    }

    /// Why the stored records are not the state the log built: the first
    /// difference, naming the service and version.
    pub fn differences(&self, stored: &RegistryState) -> Option<String> {
        for (id, service) in &stored.services {
            for (version, digest) in &service.versions {
                match self.version_digest(id, version) {
                    None => {
                        return Some(format!(
                            "`{id}` version {version} is in the store but no log entry registered it"
                        ));
                    }
                    Some(logged) if logged != digest => {
                        return Some(format!(
                            "`{id}` version {version} in the store has digest {digest}, the log registered {logged} (the row was edited)"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for (id, service) in &self.services {
            for version in service.versions.keys() {
                if stored.version_digest(id, version).is_none() {
                    return Some(format!(
                        "`{id}` version {version} was registered in the log but is missing from the store"
                    ));
                }
            }
            let deprecated = stored.services.get(id).is_some_and(|s| s.deprecated);
            if deprecated != service.deprecated {
                return Some(format!(
                    "`{id}` is {} in the store but {} in the log",
                    if deprecated { "deprecated" } else { "active" },
                    if service.deprecated { "deprecated" } else { "active" }
                ));
            }
        }
        None
    }
}

/// A contract's canonical digest, as registrations record it.
pub fn contract_digest(contract: &Contract) -> String {
    content_digest(&service_view(contract))
}

/// A row of the registry: a version `(id, Some(version))` or a
/// deprecation `(id, None)`.
pub(crate) type RowKey = (String, Option<String>);

/// The log entries the rows name: versions by (id, version), deprecations
/// by id; `None` for a row written before the registry was logged.
pub(crate) struct RowEntries {
    /// Each stored version's entry.
    pub versions: BTreeMap<(String, String), Option<u64>>,
    /// Each deprecation's entry.
    pub deprecations: BTreeMap<String, Option<u64>>,
}

/// Checks, when a store opens, that every registry row matches the log
/// entry that recorded it: a version's contract recomputes to the digest
/// its entry registered, a deprecation's entry deprecates that service,
/// each entry is an unedited link of the chain, and the newest entry's
/// registry digest is the stored registry's. Returns the rows that name
/// no entry (a store an older caio wrote, to be logged by migration).
pub(crate) fn check_rows(
    records: &[ServiceRecord],
    rows: &RowEntries,
    mut load: impl FnMut(u64) -> Result<Option<Trace>, StoreError>,
) -> Result<Vec<RowKey>, StoreError> {
    let mut unlogged = Vec::new();
    let mut newest: Option<u64> = None;
    let mut entry = |seq: u64, service: &str, version: &str| -> Result<RegistryChange, StoreError> {
        let contradiction = |reason: String| StoreError::Contradicted {
            service: service.to_string(),
            version: version.to_string(),
            entry: seq,
            reason,
        };
        let trace = load(seq)?.ok_or_else(|| contradiction("the entry is missing from the log".into()))?;
        if trace.hash != link_hash(trace.seq, &trace.prev_hash, &trace.body) {
            return Err(contradiction("the entry was edited (its hash does not recompute)".into()));
        }
        let change =
            RegistryChange::of(&trace).ok_or_else(|| contradiction("the entry is not a registry change".into()))?;
        if change.service != service {
            return Err(contradiction(format!("the entry records a change of `{}`", change.service)));
        }
        Ok(change)
    };
    for record in records {
        for version in &record.versions {
            let Some(Some(seq)) = rows.versions.get(&(record.id.clone(), version.version.clone())) else {
                unlogged.push((record.id.clone(), Some(version.version.clone())));
                continue;
            };
            newest = newest.max(Some(*seq));
            let change = entry(*seq, &record.id, &version.version)?;
            let digest = contract_digest(&version.contract);
            let contradiction = |reason: String| StoreError::Contradicted {
                service: record.id.clone(),
                version: version.version.clone(),
                entry: *seq,
                reason,
            };
            if change.event != "register" || change.version.as_deref() != Some(version.version.as_str()) {
                return Err(contradiction(format!(
                    "the entry records `{}` of version {}, not this registration",
                    change.event,
                    change.version.as_deref().unwrap_or("(none)")
                )));
            }
            if change.digest.as_deref() != Some(digest.as_str()) {
                return Err(contradiction(format!(
                    "the stored contract has digest {digest}, the entry registered {} (the row was edited)",
                    change.digest.as_deref().unwrap_or("(none)")
                )));
            }
        }
        if record.deprecated_at.is_some() {
            match rows.deprecations.get(&record.id) {
                Some(Some(seq)) => {
                    newest = newest.max(Some(*seq));
                    let change = entry(*seq, &record.id, "(deprecation)")?;
                    if change.event != "deprecate" {
                        return Err(StoreError::Contradicted {
                            service: record.id.clone(),
                            version: "(deprecation)".into(),
                            entry: *seq,
                            reason: format!("the entry records `{}`, not a deprecation", change.event),
                        });
                    }
                }
                _ => unlogged.push((record.id.clone(), None)),
            }
        }
    }
    if let (false, Some(_)) = (unlogged.is_empty(), newest) {
        return Err(unexplained(&unlogged));
    }
    if let Some(seq) = newest {
        let change = load(seq)?
            .as_ref()
            .and_then(RegistryChange::of)
            .ok_or_else(|| StoreError::Corrupt(format!("log entry {seq} is no longer a registry change")))?;
        let stored = RegistryState::of_records(records).digest();
        if change.registry != stored {
            return Err(StoreError::Contradicted {
                service: change.service,
                version: change.version.unwrap_or_else(|| "(deprecation)".into()),
                entry: seq,
                reason: format!(
                    "the registry stored has digest {stored}, the newest registry entry recorded {} (rows were added, removed or edited)",
                    change.registry
                ),
            });
        }
    }
    Ok(unlogged)
}

/// The error for rows that name no entry in a store whose registry is
/// already in the log: they were added behind the store's back.
pub(crate) fn unexplained(rows: &[RowKey]) -> StoreError {
    let (id, version) = &rows[0];
    StoreError::Corrupt(format!(
        "the registry row of `{id}` {} names no log entry (it was added behind the store's back); {} such row(s)",
        version.as_deref().map_or("(deprecation)".to_string(), |v| format!("version {v}")),
        rows.len()
    ))
}

/// The entries that log the rows of a store an older caio wrote: every
/// version registered (services in id order, versions oldest first), then
/// every deprecation, each with the registry digest it leaves.
pub(crate) fn migration_changes(records: &[ServiceRecord]) -> Vec<(RegistryChange, RowKey)> {
    let mut state = RegistryState::default();
    let mut changes = Vec::new();
    let mut log = |mut change: RegistryChange, key: RowKey| {
        state.apply(&change).expect("stored rows replay");
        change.registry = state.digest();
        changes.push((change, key));
    };
    for record in records {
        for version in &record.versions {
            let digest = contract_digest(&version.contract);
            let change = RegistryChange::registration(
                &record.id,
                &version.version,
                &digest,
                MIGRATION_ACTOR,
                version.registered_at,
                String::new(),
            );
            log(change, (record.id.clone(), Some(version.version.clone())));
        }
    }
    for record in records {
        if let Some(at) = record.deprecated_at {
            log(RegistryChange::deprecation(&record.id, MIGRATION_ACTOR, at, String::new()), (record.id.clone(), None));
        }
    }
    changes
}

/// A replay of the registry entries of a log, in order, as a full
/// verification reads it.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    state: RegistryState,
    /// Registry entries replayed.
    pub(crate) entries: u64,
    /// The newest of them.
    pub(crate) last: Option<u64>,
}

impl Replay {
    /// Takes the next entry of the log; a registry entry must apply and
    /// leave the registry with the digest it records.
    pub(crate) fn push(&mut self, trace: &Trace) -> Result<(), String> {
        let Some(change) = RegistryChange::of(trace) else { return Ok(()) };
        self.state.apply(&change)?;
        self.entries += 1;
        self.last = Some(trace.seq);
        let digest = self.state.digest();
        if digest != change.registry {
            return Err(format!(
                "records registry digest {} after the change, the changes before it give {digest}",
                change.registry
            ));
        }
        Ok(())
    }

    /// The state the log built.
    pub(crate) fn state(&self) -> &RegistryState {
        &self.state
    }
}
