//! A verified competence passport in the European Learning Model (ELM 3):
//! a `EuropeanDigitalCredential` skeleton that Europass tooling can read.
//!
//! It is an export, not a credential: Europass credentials are sealed by
//! the awarding body with an e-seal (a JAdES signature with a qualified
//! certificate), which samverka does not hold. The export therefore has
//! no proof, says so in its display parameters, and is only as good as
//! the passport it came from, which is what a verifier should check.
//!
//! Each merit becomes a claim of the person: a `LearningAchievement`
//! (an education record or a validated competence) or a
//! `LearningActivity` (an employment period), awarded by the organisation
//! that holds the record and specified by its name, code, credits and
//! classification codes. The display parameters, the issuer's legal
//! identifier and location, which the EDC profile also asks for, are
//! given only as far as the passport knows them.

use serde_json::{Value, json};

use super::passport::{Merit, kind_of, merits};

/// The ELM contexts an EDC names.
pub const ELM_CONTEXT: [&str; 2] = [
    "https://www.w3.org/2018/credentials/v1",
    "http://data.europa.eu/snb/model/context/edc-ap",
];

fn lang(text: &str) -> Value {
    json!({ "sv": text })
}

fn concept(id: &str, scheme: &str, label: &str) -> Value {
    json!({
        "id": id,
        "type": "Concept",
        "inScheme": { "id": scheme, "type": "ConceptScheme" },
        "prefLabel": { "en": label },
    })
}

fn claim(m: &Merit, i: usize, passport_id: &str) -> Value {
    let id = format!("{passport_id}#claim-{i}");
    // A self-declared merit is the person's own word: awarded by them,
    // never by an organisation.
    let body = if m.kind() == "self-declared" {
        json!({ "id": format!("{id}-awarding-body"), "type": "Person", "fullName": lang("the holder (self-declared, attested by no one)") })
    } else if m.creator.is_empty() {
        json!({ "id": format!("{id}-awarding-body"), "type": "Organisation", "legalName": lang(&m.source_name) })
    } else {
        json!({ "id": format!("{id}-awarding-body"), "type": "Organisation", "legalName": lang(&m.creator) })
    };
    let mut awarded_by = json!({
        "id": format!("{id}-awarding"),
        "type": "AwardingProcess",
        "awardingBody": [body],
    });
    if !m.awarded.is_empty() {
        awarded_by["awardingDate"] = json!(format!("{}T00:00:00Z", m.awarded));
    }
    let employment = kind_of(&m.record_type) == "employment";
    let mut specified_by = json!({
        "id": format!("{id}-specification"),
        "type": if employment { "LearningActivitySpecification" } else { "LearningAchievementSpecification" },
        "title": lang(&m.name),
    });
    if !m.code.is_empty() {
        specified_by["identifier"] = json!([{ "type": "Identifier", "notation": m.code }]);
    }
    if let Some(credits) = m.credits {
        specified_by["creditPoint"] = json!([{ "type": "CreditPoint", "point": credits.to_string(), "framework": lang(&m.credit_unit) }]);
    }
    if !m.codes.is_empty() {
        specified_by["dcType"] = json!(m
            .codes
            .iter()
            .map(|(framework, code)| json!({ "type": "Concept", "notation": code, "prefLabel": { "en": framework } }))
            .collect::<Vec<_>>());
    }
    let mut claim = json!({
        "id": id,
        "type": if employment { "LearningActivity" } else { "LearningAchievement" },
        "title": lang(&m.name),
        "awardedBy": awarded_by,
        "specifiedBy": specified_by,
    });
    if !m.result.is_empty() {
        claim["description"] = lang(&format!("Result: {}", m.result));
    } else if m.kind() == "self-declared" {
        claim["description"] = lang("Declared by the holder; attested by no one.");
    }
    if employment && !m.start.is_empty() {
        claim["temporal"] = json!({
            "type": "PeriodOfTime",
            "startDate": format!("{}T00:00:00Z", m.start),
            "endDate": (!m.end.is_empty()).then(|| format!("{}T00:00:00Z", m.end)),
        });
    }
    claim
}

/// The ELM export of a verified passport credential (see
/// [`super::passport::verify`]).
pub fn from_passport(credential: &Value) -> Value {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let id = s(credential, "id");
    let english = concept(
        "http://publications.europa.eu/resource/authority/language/ENG",
        "http://publications.europa.eu/resource/authority/language",
        "English",
    );
    let issued = s(credential, "validFrom");
    let subject = &credential["credentialSubject"];
    json!({
        "@context": ELM_CONTEXT,
        "id": id,
        "type": ["VerifiableCredential", "EuropeanDigitalCredential"],
        "credentialSchema": {
            "id": "http://data.europa.eu/snb/model/ap/edc-generic-full",
            "type": "ShaclValidator2017",
        },
        "credentialProfiles": [concept(
            "http://data.europa.eu/snb/credential/e34929035b",
            "http://data.europa.eu/snb/credential/25831c2",
            "Generic",
        )],
        "displayParameter": {
            "id": format!("{id}#display"),
            "type": "DisplayParameter",
            "title": { "en": "Competence passport" },
            "description": { "en": "Unsealed export of a competence passport signed by a samverka gateway as a CLR 2.0 credential. It carries no e-seal: verify the passport itself." },
            "language": [english.clone()],
            "primaryLanguage": english,
        },
        "issuer": {
            "id": s(&credential["issuer"], "id"),
            "type": "Organisation",
            "legalName": lang(&s(&credential["issuer"], "name")),
        },
        "issuanceDate": issued,
        "issued": issued,
        "validFrom": issued,
        "credentialSubject": {
            "id": s(subject, "id"),
            "type": "Person",
            "identifier": [{
                "type": "Identifier",
                "notation": s(&subject["identifier"][0], "identityHash"),
                "schemeName": "sha256 of the personal identity number and the holder salt",
            }],
            "hasClaim": merits(credential)
                .iter()
                .enumerate()
                .map(|(i, m)| claim(m, i, &id))
                .collect::<Vec<_>>(),
        },
    })
}
