//! The `samverka.admin.v1.Registry` service: operators read and change
//! the registry (`crate::registry`) without a restart.
//!
//! Only certificates of the `operator` role may call it; every call,
//! allowed or refused (but for a caller over its rate), is an audit entry
//! naming the operator's organisation and certificate thumbprint. A
//! change is made on the latest version only (`expected_version`), checked
//! whole by the configuration's parsers, and written with its audit entry
//! in one transaction; this replica puts it in force at once, the others
//! within [`crate::registry::FOLLOW_EVERY`].

mod convert;

use std::sync::Arc;

use samverka_certs::{CertIdentity, OrgNumber, Role};
use samverka_proto::admin::v1 as pb;
use samverka_proto::admin::v1::registry_server;
use tonic::{Request, Response, Status};

use super::rpc::{Call, Method};
use crate::audit::{AuditEntry, Decision};
use crate::config::{RegistrySource, RegistryTables, document_digest};
use crate::error::{GatewayError, Reason};
use crate::pipeline::rate::RateKey;
use crate::registry::change::{self, Item, Kind};
use crate::state::Gateway;
use crate::store::registry::{PutRegistry, RegistryVersion};

/// Versions per ListVersions page unless the caller asks for fewer.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most versions per page.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The operator calling: its organisation and certificate.
#[derive(Debug, Clone)]
struct Operator {
    org: OrgNumber,
    /// Hex SHA-256 of the certificate (DER).
    thumbprint: String,
}

impl Operator {
    /// `changed_by` of a version it writes.
    fn name(&self) -> String {
        format!("{} (certificate sha256:{})", self.org, self.thumbprint)
    }
}

/// The leaf certificate of `request`, if it sent one.
fn leaf<T>(request: &Request<T>) -> Option<Vec<u8>> {
    let certs = request.peer_certs()?;
    certs.first().map(|c| c.as_ref().to_vec())
}

fn thumbprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    samverka_proto::hex(d.as_ref())
}

/// The operator of `der`, which must carry the `operator` role.
fn operator(der: Option<&[u8]>) -> Result<Operator, GatewayError> {
    let der = der.ok_or_else(|| {
        GatewayError::new(Reason::IdentityMissing, "a client certificate is required")
    })?;
    let id = CertIdentity::from_der(der).map_err(|e| GatewayError {
        detail: Some(e.to_string()),
        ..GatewayError::new(
            Reason::IdentityMissing,
            "the client certificate carries no samverka identity",
        )
    })?;
    if id.role != Role::Operator {
        return Err(GatewayError {
            detail: Some(format!("{} presented a {} certificate", id.agency, id.role)),
            ..GatewayError::new(
                Reason::RoleRequired,
                "an operator certificate is required to read or change the registry",
            )
        });
    }
    Ok(Operator {
        org: id.agency,
        thumbprint: thumbprint(der),
    })
}

fn invalid(e: crate::config::ConfigError) -> GatewayError {
    let field = if e.key.is_empty() {
        "document".to_owned()
    } else {
        e.key.clone()
    };
    let message = match e.line {
        Some(line) => format!("line {line}: {}: {}", field, e.reason),
        None => format!("{field}: {}", e.reason),
    };
    GatewayError::invalid(Reason::RegistryInvalid, field, message)
}

/// The `samverka.admin.v1.Registry` service.
#[derive(Debug, Clone)]
pub struct RegistryService {
    gateway: Arc<Gateway>,
}

impl RegistryService {
    /// The service over the gateway's state.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        RegistryService { gateway }
    }

    /// Runs one RPC: the caller's rate (by certificate), the operator's
    /// identity, then `f`, whose result is recorded in `entry` and
    /// committed, unless `f` committed the entry itself with a new version
    /// (it then gives back no entry). Spawned, so that a caller who goes
    /// away does not cut the call off before its entry is committed. A
    /// caller over its rate is refused unaudited, as on every service: a
    /// flood must not fill the trail.
    async fn serve<T, R, F, Fut>(
        &self,
        method: Method,
        request: Request<T>,
        f: F,
    ) -> Result<Response<R>, Status>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: FnOnce(RegistryService, Operator, T, AuditEntry) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (Result<R, GatewayError>, Option<AuditEntry>)>
            + Send
            + 'static,
    {
        let gw = &self.gateway;
        let call = Call::new(&gw.metrics, method, request.metadata());
        let der = leaf(&request);
        let key = RateKey::certificate(der.as_deref().unwrap_or_default());
        if let Err(e) = gw.rate.check(&key) {
            return Err(call.refuse(e));
        }
        let who = operator(der.as_deref());
        let mut entry = crate::audit::entry(method.label(), gw.clock.now_ms());
        entry.trace_id = call.trace().trace_id.clone();
        if let Some(der) = &der {
            entry
                .details
                .insert("certificate_sha256".into(), thumbprint(der));
            // Whoever it is, operator or not: the refusal names them too.
            if let Ok(id) = CertIdentity::from_der(der) {
                entry.caller = id.agency.to_string();
                entry.details.insert("role".into(), id.role.to_string());
            }
        }
        let req = request.into_inner();
        let svc = self.clone();
        // Kept to record a call whose task failed (a defect), under an id
        // of its own.
        let mut if_failed = entry.clone();
        if_failed.audit_id = crate::audit::new_id();
        let audit = gw.audit.clone();
        let task = async move {
            let audit = &svc.gateway.audit.clone();
            let op = match who {
                Ok(op) => op,
                Err(e) => return audit.commit_outcome(entry, Err::<R, _>(e)).await,
            };
            match f(svc.clone(), op, req, entry).await {
                // Committed with its version.
                (Ok(answer), None) => Ok(answer),
                (result, Some(entry)) => audit.commit_outcome(entry, result).await,
                (Err(e), None) => Err(e),
            }
        };
        let task = tokio::spawn(tracing::Instrument::instrument(task, call.span().clone()));
        call.run(Box::pin(async move {
            match task.await {
                Ok(answer) => answer,
                Err(e) => {
                    let failed = Err(GatewayError::internal(format!("registry call: {e}")));
                    audit.commit_outcome(if_failed, failed).await
                }
            }
        }))
        .await
    }

    /// The latest version and its tables: the store's, or the file's.
    async fn latest(&self) -> Result<(RegistryVersion, RegistryTables), GatewayError> {
        let (v, tables) = self.latest_as_stored().await?;
        Ok((v, tables.map_err(GatewayError::internal)?))
    }

    /// The latest version, and its tables if this gateway can read them (a
    /// version it cannot read can still be replaced whole).
    async fn latest_as_stored(
        &self,
    ) -> Result<(RegistryVersion, Result<RegistryTables, String>), GatewayError> {
        let gw = &self.gateway;
        if gw.config.registry_source == RegistrySource::File {
            let current = gw.registry.current();
            let document = current
                .tables
                .to_document()
                .map_err(GatewayError::internal)?;
            let v = RegistryVersion {
                version: current.version,
                digest: current.digest.clone(),
                document,
                changed_at_ms: 0,
                changed_by: gw
                    .config
                    .file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                summary: String::new(),
            };
            return Ok((v, Ok(current.tables.clone())));
        }
        let v = gw
            .store
            .registry_version(None)
            .await
            .map_err(GatewayError::store)?
            .ok_or_else(|| GatewayError::internal("the store holds no registry"))?;
        let tables = RegistryTables::from_document(&v.document).map_err(|e| e.to_string());
        Ok((v, tables))
    }

    /// The change `edit` makes on the latest version, if that is
    /// `expected` and this gateway's registry is the store's, checked whole:
    /// the version it is made on, the tables after, their document, and
    /// what changed. `entry` gets the version and digest it is made on.
    async fn checked(
        &self,
        expected: i64,
        whole: bool,
        entry: &mut AuditEntry,
        edit: impl FnOnce(&mut RegistryTables) -> Result<(), GatewayError>,
    ) -> Result<(RegistryVersion, RegistryTables, String, Vec<change::Change>), GatewayError> {
        let gw = &self.gateway;
        if gw.config.registry_source == RegistrySource::File {
            return Err(GatewayError::new(
                Reason::RegistryReadOnly,
                "this gateway's registry is its configuration file: change the file and send SIGHUP",
            ));
        }
        if expected <= 0 {
            return Err(GatewayError::invalid(
                Reason::FieldMissing,
                "expected_version",
                "expected_version is required: the version the change is made on",
            ));
        }
        let (latest, before) = self.latest_as_stored().await?;
        entry
            .details
            .insert("version_before".into(), latest.version.to_string());
        entry
            .details
            .insert("digest_before".into(), latest.digest.clone());
        if latest.version != expected {
            return Err(GatewayError::new(
                Reason::RegistryVersionMismatch,
                format!(
                    "the registry is at version {}, not {expected}: read it again and retry",
                    latest.version
                ),
            ));
        }
        // A latest version this gateway cannot read (a hand edit, a
        // newer release) can only be replaced whole.
        let before = match before {
            Ok(t) => t,
            Err(_) if whole => RegistryTables::default(),
            Err(why) => {
                return Err(GatewayError {
                    detail: Some(why),
                    ..GatewayError::invalid(
                        Reason::RegistryInvalid,
                        "expected_version",
                        format!(
                            "version {} does not read with this gateway: replace it whole (ApplyDocument)",
                            latest.version
                        ),
                    )
                });
            }
        };
        let mut after = before.clone();
        edit(&mut after)?;
        let document = after
            .to_document()
            .map_err(|e| GatewayError::invalid(Reason::RegistryInvalid, "item", e.to_string()))?;
        let after = RegistryTables::from_document(&document).map_err(invalid)?;
        gw.registry
            .check(&after)
            .map_err(|e| GatewayError::invalid(Reason::RegistryInvalid, "item", e))?;
        let document = after.to_document().map_err(GatewayError::internal)?;
        let changes = change::diff(&before, &after);
        Ok((latest, after, document, changes))
    }

    /// Makes `edit` on the latest version, if it is `expected`; checks the
    /// result whole and writes it, with `entry`, unless it is a dry run or
    /// changes nothing. The entry comes back when it is still to be
    /// committed (a refusal, a dry run, no change).
    async fn change(
        &self,
        op: &Operator,
        expected: i64,
        dry_run: bool,
        mut entry: AuditEntry,
        whole: bool,
        edit: impl FnOnce(&mut RegistryTables) -> Result<(), GatewayError>,
    ) -> (Result<pb::ChangeResult, GatewayError>, Option<AuditEntry>) {
        let gw = &self.gateway;
        entry.details.insert("dry_run".into(), dry_run.to_string());
        let checked = self.checked(expected, whole, &mut entry, edit).await;
        let (latest, after, document, changes) = match checked {
            Ok(c) => c,
            Err(e) => return (Err(e), Some(entry)),
        };
        let next = RegistryVersion {
            version: latest.version + i64::from(!changes.is_empty()),
            digest: document_digest(&document),
            document,
            changed_at_ms: gw.clock.now_ms(),
            changed_by: op.name(),
            summary: change::summary(&changes),
        };
        let mut result = pb::ChangeResult {
            version_before: latest.version,
            version: next.version,
            digest_before: latest.digest.clone(),
            digest: next.digest.clone(),
            changes: changes.iter().map(convert::change_to_wire).collect(),
            dry_run,
            audit_id: entry.audit_id.clone(),
        };
        crate::registry::describe(&mut entry, Some((latest.version, &latest.digest)), &next);
        if dry_run || changes.is_empty() {
            return (Ok(result), Some(entry));
        }
        entry.decision = Decision::Allowed.as_str().to_owned();
        match gw.store.put_registry(next.clone(), entry.clone()).await {
            Ok(PutRegistry::Written(committed)) => {
                result.audit_id = committed.audit_id;
                tracing::info!(version = next.version, operator = %op.org, "registry changed");
                if let Err(e) = gw.registry.install(next.version, next.digest, after) {
                    // Written and checked: the follower tries again.
                    tracing::error!(error = %e, "registry: the new version could not be put in force here yet");
                }
                (Ok(result), None)
            }
            Ok(PutRegistry::Conflict(now)) => (
                Err(GatewayError::new(
                    Reason::RegistryVersionMismatch,
                    format!(
                        "another change came first (the registry is at version {now}): read it again and retry"
                    ),
                )),
                Some(entry),
            ),
            // The commit's outcome is unknown: its refusal is committed
            // under an id of its own (`AuditWriter::commit_outcome`).
            Err(e) => (Err(GatewayError::store(e)), Some(entry)),
        }
    }
}

#[tonic::async_trait]
impl registry_server::Registry for RegistryService {
    async fn get_registry(
        &self,
        request: Request<pb::GetRegistryRequest>,
    ) -> Result<Response<pb::GetRegistryResponse>, Status> {
        self.serve(
            Method::RegistryGet,
            request,
            |svc, _, req, mut entry| async move {
                let result = async {
                    let v = if req.version == 0 {
                        svc.latest().await?.0
                    } else {
                        let v = svc
                            .gateway
                            .store
                            .registry_version(Some(req.version))
                            .await
                            .map_err(GatewayError::store)?;
                        v.filter(|_| svc.gateway.config.registry_source == RegistrySource::Store)
                            .ok_or_else(|| {
                                GatewayError::invalid(
                                    Reason::RegistryItemNotFound,
                                    "version",
                                    format!("there is no registry version {}", req.version),
                                )
                            })?
                    };
                    entry
                        .details
                        .insert("version".into(), v.version.to_string());
                    Ok(pb::GetRegistryResponse {
                        version: Some(convert::version_to_wire(&v)),
                        document: v.document,
                    })
                }
                .await;
                (result, Some(entry))
            },
        )
        .await
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsResponse>, Status> {
        self.serve(
            Method::RegistryList,
            request,
            |svc, _, req, mut entry| async move {
                let result = async {
                    let kinds = match convert::kind(req.kind)? {
                        Some(k) => vec![k],
                        None => Kind::ALL.to_vec(),
                    };
                    let (v, tables) = svc.latest().await?;
                    entry
                        .details
                        .insert("version".into(), v.version.to_string());
                    let items = kinds
                        .into_iter()
                        .flat_map(|k| change::items(&tables, k))
                        .map(convert::item_to_wire)
                        .collect();
                    Ok(pb::ListItemsResponse {
                        version: v.version,
                        items,
                    })
                }
                .await;
                (result, Some(entry))
            },
        )
        .await
    }

    async fn put_item(
        &self,
        request: Request<pb::PutItemRequest>,
    ) -> Result<Response<pb::PutItemResponse>, Status> {
        self.serve(
            Method::RegistryPut,
            request,
            |svc, op, req, entry| async move {
                let item: Result<Item, GatewayError> = convert::item_from_wire(req.item);
                let (result, entry) = match item {
                    Ok(item) => {
                        svc.change(&op, req.expected_version, req.dry_run, entry, false, |t| {
                            change::put(t, item);
                            Ok(())
                        })
                        .await
                    }
                    Err(e) => (Err(e), Some(entry)),
                };
                let result = result.map(|r| pb::PutItemResponse { result: Some(r) });
                (result, entry)
            },
        )
        .await
    }

    async fn delete_item(
        &self,
        request: Request<pb::DeleteItemRequest>,
    ) -> Result<Response<pb::DeleteItemResponse>, Status> {
        self.serve(
            Method::RegistryDelete,
            request,
            |svc, op, req, entry| async move {
                let kind = convert::kind(req.kind).and_then(|k| {
                    k.ok_or_else(|| {
                        GatewayError::invalid(Reason::FieldMissing, "kind", "kind is required")
                    })
                });
                let (result, entry) = match kind {
                    Ok(kind) => {
                        let key = req.key.clone();
                        svc.change(
                            &op,
                            req.expected_version,
                            req.dry_run,
                            entry,
                            false,
                            move |t| {
                                if change::delete(t, kind, &key) {
                                    Ok(())
                                } else {
                                    Err(GatewayError::invalid(
                                        Reason::RegistryItemNotFound,
                                        "key",
                                        format!(
                                            "the registry has no {} {:?}",
                                            kind.as_str(),
                                            crate::pipeline::validate::echo(&key)
                                        ),
                                    ))
                                }
                            },
                        )
                        .await
                    }
                    Err(e) => (Err(e), Some(entry)),
                };
                let result = result.map(|r| pb::DeleteItemResponse { result: Some(r) });
                (result, entry)
            },
        )
        .await
    }

    async fn apply_document(
        &self,
        request: Request<pb::ApplyDocumentRequest>,
    ) -> Result<Response<pb::ApplyDocumentResponse>, Status> {
        self.serve(
            Method::RegistryApply,
            request,
            |svc, op, req, entry| async move {
                let (result, entry) = svc
                    .change(&op, req.expected_version, req.dry_run, entry, true, |t| {
                        *t = RegistryTables::from_document(&req.document).map_err(invalid)?;
                        Ok(())
                    })
                    .await;
                let result = result.map(|r| pb::ApplyDocumentResponse { result: Some(r) });
                (result, entry)
            },
        )
        .await
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        self.serve(
            Method::RegistryHistory,
            request,
            |svc, _, req, entry| async move {
                let result = async {
                    if svc.gateway.config.registry_source == RegistrySource::File {
                        let (v, _) = svc.latest().await?;
                        return Ok(pb::ListVersionsResponse {
                            versions: vec![convert::version_to_wire(&v)],
                        });
                    }
                    let before = match req.before_version {
                        0 => i64::MAX,
                        n => n,
                    };
                    let size = match req.page_size {
                        0 => DEFAULT_PAGE_SIZE,
                        n => n.min(MAX_PAGE_SIZE),
                    };
                    let versions = svc
                        .gateway
                        .store
                        .registry_history(before, i64::from(size))
                        .await
                        .map_err(GatewayError::store)?;
                    Ok(pb::ListVersionsResponse {
                        versions: versions.iter().map(convert::version_to_wire).collect(),
                    })
                }
                .await;
                (result, Some(entry))
            },
        )
        .await
    }
}
