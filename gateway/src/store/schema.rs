//! The schema, as numbered migrations. Each backend spells the same tables
//! in its own dialect; a migration, once released, is never edited (only
//! its number counts): add a new one instead.

/// SQLite migrations; index + 1 is the version.
pub(crate) const SQLITE: &[&str] = &[
    "
    CREATE TABLE consents (
        consent_id        TEXT PRIMARY KEY,
        subject_id        TEXT NOT NULL,
        grantee_agency    TEXT NOT NULL,
        record_types      TEXT NOT NULL,
        purpose           TEXT NOT NULL,
        source_agencies   TEXT NOT NULL,
        valid_from_ms     INTEGER NOT NULL,
        valid_until_ms    INTEGER NOT NULL,
        registrar_agency  TEXT NOT NULL,
        evidence_ref      TEXT NOT NULL,
        request_id        TEXT NOT NULL,
        granted_at_ms     INTEGER NOT NULL,
        revoked_at_ms     INTEGER,
        revocation_reason TEXT,
        UNIQUE (registrar_agency, request_id)
    );
    CREATE INDEX consents_by_subject ON consents (subject_id, grantee_agency);
    CREATE TABLE audit_entries (
        seq          INTEGER PRIMARY KEY,
        prev_hash    TEXT NOT NULL,
        hash         TEXT NOT NULL,
        audit_id     TEXT NOT NULL UNIQUE,
        time_ms      INTEGER NOT NULL,
        caller       TEXT NOT NULL,
        method       TEXT NOT NULL,
        subject_id   TEXT NOT NULL,
        record_types TEXT NOT NULL,
        purpose      TEXT NOT NULL,
        consent_id   TEXT NOT NULL,
        sources      TEXT NOT NULL,
        decision     TEXT NOT NULL,
        reason       TEXT NOT NULL,
        trace_id     TEXT NOT NULL
    );
    CREATE INDEX audit_by_subject ON audit_entries (subject_id, seq);
    CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO audit_head (id, seq, hash)
        VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
    CREATE TABLE audit_checkpoints (
        seq     INTEGER PRIMARY KEY,
        hash    TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        jws     TEXT NOT NULL
    );
",
    "
    -- Two pages fewer in every audit commit: the index by person moves
    -- to the index file beside the store (see store/access_index.rs),
    -- and the head is the last entry.
    DROP INDEX audit_by_subject;
    DROP TABLE audit_head;
",
    "
    -- Audit entries name their canonical encoding (audit/chain.rs):
    -- rows before this migration are format 1, with comma-joined lists.
    ALTER TABLE audit_entries ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE audit_entries ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
",
    "
    -- Who revoked a consent (any registrar holding the person's assertion
    -- may), and the person assertions already used: each is single-use
    -- until it expires, across every replica on this store.
    ALTER TABLE consents ADD COLUMN revoked_by TEXT;
    CREATE TABLE person_assertions (
        registrar     TEXT NOT NULL,
        jti           TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (registrar, jti)
    );
    CREATE INDEX person_assertions_by_expiry ON person_assertions (expires_at_ms);
",
    "
    -- A consent's life (store/lifecycle.rs): requested by the agency that
    -- needs it, decided by the person, paused, used; the period its
    -- records may cover and how many reads it allows.
    ALTER TABLE consents ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
    UPDATE consents SET state = 'revoked' WHERE revoked_at_ms IS NOT NULL;
    ALTER TABLE consents ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN justification TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN records_from TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN records_until TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN one_time INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE consents ADD COLUMN max_reads INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE consents ADD COLUMN reads_used INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE consents ADD COLUMN decide_by_ms INTEGER;
    ALTER TABLE consents ADD COLUMN decided_at_ms INTEGER;
    ALTER TABLE consents ADD COLUMN decided_by TEXT;
    ALTER TABLE consents ADD COLUMN valid_for_days INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX consents_by_end ON consents (state, valid_until_ms);
    CREATE INDEX consents_by_decision ON consents (state, decide_by_ms);
",
    "
    -- Versions of the registry (store/registry.rs): agencies, purposes,
    -- access rules, adapter routes and identity providers as one document.
    CREATE TABLE registry_versions (
        version       INTEGER PRIMARY KEY,
        document      TEXT NOT NULL,
        digest        TEXT NOT NULL,
        changed_at_ms INTEGER NOT NULL,
        changed_by    TEXT NOT NULL,
        summary       TEXT NOT NULL
    );
",
    "
    -- The gateway's signing keys (store/keys.rs), kept after rotation.
    CREATE TABLE signing_keys (
        kid            TEXT PRIMARY KEY,
        cert_pem       TEXT NOT NULL,
        in_use_from_ms INTEGER NOT NULL,
        retired_at_ms  INTEGER,
        retire_reason  TEXT
    );
    -- Credentials the operator revoked (store/status.rs): the passports'
    -- revocation list.
    CREATE TABLE revoked_credentials (
        credential_id TEXT PRIMARY KEY,
        revoked_at_ms INTEGER NOT NULL,
        reason        TEXT NOT NULL,
        revoked_by    TEXT NOT NULL
    );
",
    "
    -- Merits people declare themselves (store/merits.rs); `merit` is the
    -- SelfDeclaredMerit message, protobuf-encoded.
    CREATE TABLE declared_merits (
        merit_id         TEXT PRIMARY KEY,
        subject_id       TEXT NOT NULL,
        registrar_agency TEXT NOT NULL,
        merit            BLOB NOT NULL,
        declared_at_ms   INTEGER NOT NULL,
        withdrawn_at_ms  INTEGER
    );
    CREATE INDEX declared_merits_by_subject ON declared_merits (subject_id, declared_at_ms);
",
];

/// PostgreSQL migrations; index + 1 is the version.
pub(crate) const POSTGRES: &[&str] = &[
    "
    CREATE TABLE consents (
        consent_id        TEXT PRIMARY KEY,
        subject_id        TEXT NOT NULL,
        grantee_agency    TEXT NOT NULL,
        record_types      TEXT NOT NULL,
        purpose           TEXT NOT NULL,
        source_agencies   TEXT NOT NULL,
        valid_from_ms     BIGINT NOT NULL,
        valid_until_ms    BIGINT NOT NULL,
        registrar_agency  TEXT NOT NULL,
        evidence_ref      TEXT NOT NULL,
        request_id        TEXT NOT NULL,
        granted_at_ms     BIGINT NOT NULL,
        revoked_at_ms     BIGINT,
        revocation_reason TEXT,
        UNIQUE (registrar_agency, request_id)
    );
    CREATE INDEX consents_by_subject ON consents (subject_id, grantee_agency);
    CREATE TABLE audit_entries (
        seq          BIGINT PRIMARY KEY,
        prev_hash    TEXT NOT NULL,
        hash         TEXT NOT NULL,
        audit_id     TEXT NOT NULL UNIQUE,
        time_ms      BIGINT NOT NULL,
        caller       TEXT NOT NULL,
        method       TEXT NOT NULL,
        subject_id   TEXT NOT NULL,
        record_types TEXT NOT NULL,
        purpose      TEXT NOT NULL,
        consent_id   TEXT NOT NULL,
        sources      TEXT NOT NULL,
        decision     TEXT NOT NULL,
        reason       TEXT NOT NULL,
        trace_id     TEXT NOT NULL
    );
    CREATE INDEX audit_by_subject ON audit_entries (subject_id, seq);
    CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  BIGINT NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO audit_head (id, seq, hash)
        VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
    CREATE TABLE audit_checkpoints (
        seq     BIGINT PRIMARY KEY,
        hash    TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        jws     TEXT NOT NULL
    );
",
    "
    -- Audit entries name their canonical encoding (audit/chain.rs):
    -- rows before this migration are format 1, with comma-joined lists.
    ALTER TABLE audit_entries ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE audit_entries ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
",
    "
    -- Who revoked a consent (any registrar holding the person's assertion
    -- may), and the person assertions already used: each is single-use
    -- until it expires, across every replica on this store.
    ALTER TABLE consents ADD COLUMN revoked_by TEXT;
    CREATE TABLE person_assertions (
        registrar     TEXT NOT NULL,
        jti           TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        PRIMARY KEY (registrar, jti)
    );
    CREATE INDEX person_assertions_by_expiry ON person_assertions (expires_at_ms);
",
    "
    -- A consent's life (store/lifecycle.rs): requested by the agency that
    -- needs it, decided by the person, paused, used; the period its
    -- records may cover and how many reads it allows.
    ALTER TABLE consents ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
    UPDATE consents SET state = 'revoked' WHERE revoked_at_ms IS NOT NULL;
    ALTER TABLE consents ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN justification TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN records_from TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN records_until TEXT NOT NULL DEFAULT '';
    ALTER TABLE consents ADD COLUMN one_time INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE consents ADD COLUMN max_reads INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE consents ADD COLUMN reads_used INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE consents ADD COLUMN decide_by_ms BIGINT;
    ALTER TABLE consents ADD COLUMN decided_at_ms BIGINT;
    ALTER TABLE consents ADD COLUMN decided_by TEXT;
    ALTER TABLE consents ADD COLUMN valid_for_days INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX consents_by_end ON consents (state, valid_until_ms);
    CREATE INDEX consents_by_decision ON consents (state, decide_by_ms);
",
    "
    -- Versions of the registry (store/registry.rs): agencies, purposes,
    -- access rules, adapter routes and identity providers as one document.
    CREATE TABLE registry_versions (
        version       BIGINT PRIMARY KEY,
        document      TEXT NOT NULL,
        digest        TEXT NOT NULL,
        changed_at_ms BIGINT NOT NULL,
        changed_by    TEXT NOT NULL,
        summary       TEXT NOT NULL
    );
",
    "
    -- The gateway's signing keys (store/keys.rs), kept after rotation.
    CREATE TABLE signing_keys (
        kid            TEXT PRIMARY KEY,
        cert_pem       TEXT NOT NULL,
        in_use_from_ms BIGINT NOT NULL,
        retired_at_ms  BIGINT,
        retire_reason  TEXT
    );
    -- Credentials the operator revoked (store/status.rs): the passports'
    -- revocation list.
    CREATE TABLE revoked_credentials (
        credential_id TEXT PRIMARY KEY,
        revoked_at_ms BIGINT NOT NULL,
        reason        TEXT NOT NULL,
        revoked_by    TEXT NOT NULL
    );
",
    "
    -- Merits people declare themselves (store/merits.rs); `merit` is the
    -- SelfDeclaredMerit message, protobuf-encoded.
    CREATE TABLE declared_merits (
        merit_id         TEXT PRIMARY KEY,
        subject_id       TEXT NOT NULL,
        registrar_agency TEXT NOT NULL,
        merit            BYTEA NOT NULL,
        declared_at_ms   BIGINT NOT NULL,
        withdrawn_at_ms  BIGINT
    );
    CREATE INDEX declared_merits_by_subject ON declared_merits (subject_id, declared_at_ms);
",
];
