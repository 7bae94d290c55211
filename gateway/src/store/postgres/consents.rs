//! The PostgreSQL store's consents and person assertions.

use std::sync::LazyLock;

use tokio_postgres::Row;

use super::PostgresStore;
use crate::store::{CONSENT_COLUMNS, StoreError, StoredConsent, join, split};

pub(super) fn consent_from_row(row: &Row) -> Result<StoredConsent, StoreError> {
    Ok(StoredConsent {
        consent_id: row.try_get(0)?,
        subject_id: row.try_get(1)?,
        grantee_agency: row.try_get(2)?,
        record_types: split(row.try_get(3)?),
        purpose: row.try_get(4)?,
        source_agencies: split(row.try_get(5)?),
        valid_from_ms: row.try_get(6)?,
        valid_until_ms: row.try_get(7)?,
        registrar_agency: row.try_get(8)?,
        evidence_ref: row.try_get(9)?,
        request_id: row.try_get(10)?,
        granted_at_ms: row.try_get(11)?,
        revoked_at_ms: row.try_get(12)?,
        revocation_reason: row.try_get(13)?,
        revoked_by: row.try_get(14)?,
        state: crate::store::ConsentState::parse(row.try_get(15)?),
        requested_by: row.try_get(16)?,
        justification: row.try_get(17)?,
        records_from: row.try_get(18)?,
        records_until: row.try_get(19)?,
        one_time: row.try_get::<_, i32>(20)? != 0,
        max_reads: count(row.try_get(21)?),
        reads_used: count(row.try_get(22)?),
        decide_by_ms: row.try_get(23)?,
        decided_at_ms: row.try_get(24)?,
        decided_by: row.try_get(25)?,
        valid_for_days: count(row.try_get(26)?),
    })
}

/// A stored INTEGER count (never negative when written by the gateway).
fn count(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// A count as the INTEGER column stores it.
pub(super) fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl PostgresStore {
    pub(in crate::store) async fn insert_consent(
        &self,
        c: StoredConsent,
    ) -> Result<(StoredConsent, bool), StoreError> {
        let client = self.pool.get().await?;
        let insert = client
            .prepare_cached(&format!(
                "INSERT INTO consents ({CONSENT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) \
                 ON CONFLICT (registrar_agency, request_id) DO NOTHING"
            ))
            .await?;
        let inserted = client
            .execute(
                &insert,
                &[
                    &c.consent_id,
                    &c.subject_id,
                    &c.grantee_agency,
                    &join(&c.record_types),
                    &c.purpose,
                    &join(&c.source_agencies),
                    &c.valid_from_ms,
                    &c.valid_until_ms,
                    &c.registrar_agency,
                    &c.evidence_ref,
                    &c.request_id,
                    &c.granted_at_ms,
                    &c.revoked_at_ms,
                    &c.revocation_reason,
                    &c.revoked_by,
                    &c.state.as_str(),
                    &c.requested_by,
                    &c.justification,
                    &c.records_from,
                    &c.records_until,
                    &i32::from(c.one_time),
                    &int(c.max_reads),
                    &int(c.reads_used),
                    &c.decide_by_ms,
                    &c.decided_at_ms,
                    &c.decided_by,
                    &int(c.valid_for_days),
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok((c, true));
        }
        let existing = client
            .prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE registrar_agency = $1 AND request_id = $2"
            ))
            .await?;
        let row = client
            .query_one(&existing, &[&c.registrar_agency, &c.request_id])
            .await?;
        Ok((consent_from_row(&row)?, false))
    }

    pub(in crate::store) async fn import_consents(
        &self,
        consents: Vec<StoredConsent>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Column arrays through UNNEST: one round trip per chunk instead of
        // one per row.
        let insert = tx
            .prepare(&format!(
                "INSERT INTO consents ({CONSENT_COLUMNS}) SELECT * FROM UNNEST(\
                 $1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], \
                 $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::BIGINT[], $13::BIGINT[], $14::TEXT[], $15::TEXT[], \
                 $16::TEXT[], $17::TEXT[], $18::TEXT[], $19::TEXT[], $20::TEXT[], $21::INTEGER[], $22::INTEGER[], \
                 $23::INTEGER[], $24::BIGINT[], $25::BIGINT[], $26::TEXT[], $27::INTEGER[])"
            ))
            .await?;
        for chunk in consents.chunks(10_000) {
            let col =
                |f: fn(&StoredConsent) -> String| chunk.iter().map(f).collect::<Vec<String>>();
            let num = |f: fn(&StoredConsent) -> i64| chunk.iter().map(f).collect::<Vec<i64>>();
            let revoked_at: Vec<Option<i64>> = chunk.iter().map(|c| c.revoked_at_ms).collect();
            let reasons: Vec<Option<String>> =
                chunk.iter().map(|c| c.revocation_reason.clone()).collect();
            let revoked_by: Vec<Option<String>> =
                chunk.iter().map(|c| c.revoked_by.clone()).collect();
            let ints = |f: fn(&StoredConsent) -> i32| chunk.iter().map(f).collect::<Vec<i32>>();
            let opt_num =
                |f: fn(&StoredConsent) -> Option<i64>| chunk.iter().map(f).collect::<Vec<_>>();
            let decided_by: Vec<Option<String>> =
                chunk.iter().map(|c| c.decided_by.clone()).collect();
            tx.execute(
                &insert,
                &[
                    &col(|c| c.consent_id.clone()),
                    &col(|c| c.subject_id.clone()),
                    &col(|c| c.grantee_agency.clone()),
                    &col(|c| join(&c.record_types)),
                    &col(|c| c.purpose.clone()),
                    &col(|c| join(&c.source_agencies)),
                    &num(|c| c.valid_from_ms),
                    &num(|c| c.valid_until_ms),
                    &col(|c| c.registrar_agency.clone()),
                    &col(|c| c.evidence_ref.clone()),
                    &col(|c| c.request_id.clone()),
                    &num(|c| c.granted_at_ms),
                    &revoked_at,
                    &reasons,
                    &revoked_by,
                    &col(|c| c.state.as_str().to_owned()),
                    &col(|c| c.requested_by.clone()),
                    &col(|c| c.justification.clone()),
                    &col(|c| c.records_from.clone()),
                    &col(|c| c.records_until.clone()),
                    &ints(|c| i32::from(c.one_time)),
                    &ints(|c| int(c.max_reads)),
                    &ints(|c| int(c.reads_used)),
                    &opt_num(|c| c.decide_by_ms),
                    &opt_num(|c| c.decided_at_ms),
                    &decided_by,
                    &ints(|c| int(c.valid_for_days)),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        // Fresh statistics, so that plans fit the imported volume.
        client.batch_execute("ANALYZE consents").await?;
        Ok(())
    }

    pub(in crate::store) async fn use_assertion(
        &self,
        registrar: &str,
        jti: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let prune = client
            .prepare_cached("DELETE FROM person_assertions WHERE expires_at_ms < $1")
            .await?;
        client.execute(&prune, &[&now_ms]).await?;
        // The primary key decides between replicas racing with one jti.
        let insert = client
            .prepare_cached(
                "INSERT INTO person_assertions (registrar, jti, expires_at_ms) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .await?;
        Ok(client
            .execute(&insert, &[&registrar, &jti, &expires_at_ms])
            .await?
            == 1)
    }

    pub(in crate::store) async fn consent(
        &self,
        consent_id: &str,
    ) -> Result<Option<StoredConsent>, StoreError> {
        let client = self.pool.get().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = $1"
            ))
            .await?;
        client
            .query_opt(&select, &[&consent_id])
            .await?
            .map(|row| consent_from_row(&row))
            .transpose()
    }

    pub(in crate::store) async fn consents_for(
        &self,
        subject_id: &str,
        grantee: Option<&str>,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        // Two statements rather than one with `$2 IS NULL OR ...`, so that
        // the read path's plan uses both index columns; their text built
        // once. Ties by id in byte order (`COLLATE "C"`), as on SQLite,
        // whatever the database's own collation.
        static BY_GRANTEE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE subject_id = $1 AND grantee_agency = $2 \
                 ORDER BY granted_at_ms DESC, consent_id COLLATE \"C\""
            )
        });
        static BY_SUBJECT: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE subject_id = $1 \
                 ORDER BY granted_at_ms DESC, consent_id COLLATE \"C\""
            )
        });
        let client = self.pool.get().await?;
        let rows = match grantee {
            Some(grantee) => {
                let select = client.prepare_cached(&BY_GRANTEE).await?;
                client.query(&select, &[&subject_id, &grantee]).await?
            }
            None => {
                let select = client.prepare_cached(&BY_SUBJECT).await?;
                client.query(&select, &[&subject_id]).await?
            }
        };
        rows.iter().map(consent_from_row).collect()
    }
}
