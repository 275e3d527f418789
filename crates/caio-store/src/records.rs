//! Rows to records and contracts to rows, the same for every engine: what a
//! registration stores (the calculus's service view, its digest and its
//! canonical text) and how stored versions become [`ServiceRecord`]s.

use std::collections::BTreeMap;

use caio_calculus::contract::Contract;
use caio_calculus::registry::content_digest;
use caio_calculus::rules::service_view;
use caio_calculus::trace::{Trace, canonical};

use crate::{ServiceRecord, StoreError, VersionRecord};

/// A version about to be stored.
pub(crate) struct NewVersion {
    pub id: String,
    pub version: String,
    pub digest: String,
    pub body: String,
}

/// Validates `contract` with the calculus and makes its row.
pub(crate) fn new_version(contract: &Contract) -> Result<NewVersion, StoreError> {
    if let Some((path, message)) = contract.problems().into_iter().next() {
        return Err(StoreError::Invalid { service: contract.id.clone(), path, message });
    }
    let view = service_view(contract);
    Ok(NewVersion {
        id: contract.id.clone(),
        version: contract.version.clone(),
        digest: content_digest(&view),
        body: canonical(&view),
    })
}

/// A stored version: id, version, digest, registration time, body.
pub(crate) type VersionRow = (String, String, String, u64, String);

/// Groups version rows (in id order) into services, versions in
/// semantic-version order.
pub(crate) fn assemble(
    deprecated: &BTreeMap<String, u64>,
    rows: impl IntoIterator<Item = VersionRow>,
) -> Result<Vec<ServiceRecord>, StoreError> {
    let mut services: BTreeMap<String, ServiceRecord> = BTreeMap::new();
    for (id, version, digest, registered_at, body) in rows {
        let contract: Contract = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("contract {id}@{version} does not parse: {e}")))?;
        let record = services.entry(id.clone()).or_insert_with(|| ServiceRecord {
            deprecated_at: deprecated.get(&id).copied(),
            id,
            versions: Vec::new(),
        });
        record.versions.push(VersionRecord { version, digest, registered_at, contract });
    }
    let mut services: Vec<ServiceRecord> = services.into_values().collect();
    for service in &mut services {
        service.versions.sort_by_key(|v| semver::Version::parse(&v.version).ok());
    }
    Ok(services)
}

/// A stored trace row back as a trace.
pub(crate) fn trace_row(seq: i64, prev_hash: String, hash: String, body: &str) -> Result<Trace, StoreError> {
    let body = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("trace {seq} has a body that is not JSON: {e}")))?;
    Ok(Trace { seq: seq as u64, prev_hash, body, hash })
}
