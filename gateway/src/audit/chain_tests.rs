//! Tests of the hash chain's encodings and of its verification.

use super::*;

fn entry(audit_id: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        prev_hash: String::new(),
        hash: String::new(),
        audit_id: audit_id.into(),
        time_ms: 1_764_400_000_000,
        caller: "2021999020".into(),
        method: "RecordExchange/GetRecords".into(),
        subject_id: "199003142388".into(),
        record_types: vec!["employment.period".into()],
        purpose: "study_guidance".into(),
        consent_id: "c-1".into(),
        sources: vec!["2021999053=OK".into()],
        decision: "allowed".into(),
        reason: String::new(),
        trace_id: String::new(),
        details: BTreeMap::new(),
        format: FORMAT,
    }
}

fn trail(n: usize) -> Vec<AuditEntry> {
    let mut head = AuditHead {
        seq: 0,
        hash: GENESIS.into(),
    };
    (0..n)
        .map(|i| {
            let mut e = entry(&format!("a-{i}"));
            link(&mut head, &mut e);
            e
        })
        .collect()
}

fn check(entries: &[AuditEntry]) -> Result<Report, Broken> {
    let mut c = ChainCheck::new(&[], &[]).expect("no checkpoints to check");
    for e in entries {
        c.push(e)?;
    }
    c.finish()
}

#[test]
fn the_encodings_are_pinned() {
    // A change to a canonical encoding must be deliberate: it breaks
    // every stored trail. The expected values were computed separately
    // (in Python, from the encodings as documented above).
    let t = trail(1);
    assert_eq!(t[0].hash, entry_hash(&t[0], GENESIS).unwrap());
    assert_eq!(
        t[0].hash, "d30cb7a6de3ed6a52f144e5835858f1d2d701c6debbfc43a4691b03bf3cd30a4",
        "format 2 changed"
    );
    let mut detailed = t[0].clone();
    detailed.details = [("b", "x,y"), ("action", "revoke")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    assert_eq!(
        entry_hash(&detailed, GENESIS).unwrap(),
        "206474746bc6a00e59e94da278e3dfadb067a96865d3f80a10da64dcd677ffad",
        "format 2 details changed"
    );
    let mut old = t[0].clone();
    old.format = 1;
    assert_eq!(
        entry_hash(&old, GENESIS).unwrap(),
        "14c2df964963e1af70082046ad1145311265b61979d2bba1c4c14945dac349fb",
        "format 1 changed: entries written before format 2 no longer verify"
    );
    // Format 1 has no room for details, and no other format exists.
    old.details = detailed.details.clone();
    assert_eq!(entry_hash(&old, GENESIS), None);
    let mut unknown = t[0].clone();
    unknown.format = FORMAT + 1;
    assert_eq!(entry_hash(&unknown, GENESIS), None);
}

#[test]
fn an_unknown_format_is_named_not_taken_for_an_edit_of_the_fields() {
    let mut t = trail(2);
    t[1].format = 7;
    let b = check(&t).unwrap_err();
    assert!(b.problem.contains("format 7"), "{b}");
}

#[test]
fn every_field_is_covered() {
    let base = trail(1).remove(0);
    let changes: &[fn(&mut AuditEntry)] = &[
        |e| e.audit_id.push('x'),
        |e| e.time_ms += 1,
        |e| e.caller.push('x'),
        |e| e.method.push('x'),
        |e| e.subject_id.push('x'),
        |e| e.record_types.push("x.y".into()),
        |e| e.purpose.push('x'),
        |e| e.consent_id.push('x'),
        |e| e.sources.clear(),
        |e| e.decision.push('x'),
        |e| e.reason.push('x'),
        |e| e.trace_id.push('x'),
        |e| {
            e.details.insert("action".into(), String::new());
        },
        |e| e.format = 1,
        |e| e.seq += 1,
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut e = base.clone();
        change(&mut e);
        assert_ne!(
            entry_hash(&e, GENESIS).unwrap(),
            base.hash,
            "change {i} not covered"
        );
    }
    // Field boundaries count: moving a character between fields changes the hash.
    let mut a = base.clone();
    a.caller = "20219990".into();
    a.method = "20RecordExchange/GetRecords".into();
    assert_ne!(entry_hash(&a, GENESIS).unwrap(), base.hash);
}

#[test]
fn an_intact_trail_verifies() {
    let report = check(&trail(5)).unwrap();
    assert_eq!(report.entries, 5);
    assert_eq!(report.range, Some((1, 5)));
}

#[test]
fn tampering_is_found_at_the_first_broken_entry() {
    let mut edited = trail(5);
    edited[2].purpose = "marketing".into();
    let b = check(&edited).unwrap_err();
    assert_eq!((b.seq, b.problem.contains("edited")), (3, true), "{b}");

    let mut deleted = trail(5);
    deleted.remove(1);
    let b = check(&deleted).unwrap_err();
    assert_eq!((b.seq, b.problem.contains("missing")), (2, true), "{b}");

    let mut reordered = trail(5);
    reordered.swap(1, 2);
    let b = check(&reordered).unwrap_err();
    assert_eq!(b.seq, 2, "{b}");

    let mut inserted = trail(5);
    let mut forged = entry("forged");
    forged.seq = 3;
    forged.prev_hash = inserted[1].hash.clone();
    forged.hash = entry_hash(&forged, &forged.prev_hash).unwrap();
    inserted.insert(2, forged);
    for e in inserted.iter_mut().skip(3) {
        e.seq += 1;
    }
    let b = check(&inserted).unwrap_err();
    assert_eq!(b.seq, 4, "{b}");
    assert!(b.problem.contains("does not link"), "{b}");
}
