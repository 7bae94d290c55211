//! The terms of a call that a person assertion is bound to.
//!
//! A registrar acts for a person only with a person assertion (see
//! `docs/security.md`): a JWS naming the action (`action`, the gRPC method
//! path) and `terms_sha256`, the base64url SHA-256 (no padding) of the request's
//! terms text. The terms text is the request's fields other than the
//! assertion, as JSON with keys sorted, no whitespace and UTF-8 unescaped
//! (Python: `json.dumps(terms, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)`). Field names are the proto names; an unset
//! timestamp is `null`, a set one `{"nanos":N,"seconds":N}`; lists keep
//! the request's order; `ListAccessEventsRequest.newest_first` and
//! `agency`, added later, are in the text only when set; a
//! `DeclareMeritRequest`'s merit is flattened into the text (`title`,
//! `description`, `skill_concepts`, `start_date`, `end_date`). The registrar computes the text from what it
//! sends and the gateway from what it received, so any changed field
//! makes the assertion fail.

use serde_json::{Value, json};

use crate::v1::{
    ApproveConsentRequest, DeclareMeritRequest, GetConsentRequest, GrantConsentRequest,
    ListAccessEventsRequest, ListConsentsRequest, ListMeritsRequest, PauseConsentRequest,
    RejectConsentRequest, ResumeConsentRequest, RevokeConsentRequest, WithdrawMeritRequest,
};

/// A request that a registrar makes for a person, with a person assertion.
pub trait PersonBound {
    /// The action, as the assertion's `action` claim: the gRPC method path.
    const ACTION: &'static str;

    /// The person the request names, if it names one (Get and Revoke name
    /// a consent instead, whose person the gateway looks up).
    fn person(&self) -> Option<&str>;

    /// The request's terms as JSON (every field but the assertion).
    fn terms_json(&self) -> Value;

    /// The assertion the request carries.
    fn person_assertion(&self) -> &str;

    /// Sets the assertion the request carries.
    fn set_person_assertion(&mut self, jws: String);

    /// The terms text whose SHA-256 the assertion names.
    fn terms_text(&self) -> String {
        // serde_json's map keeps keys sorted, which is the canonical order.
        self.terms_json().to_string()
    }
}

fn timestamp(t: Option<&prost_types::Timestamp>) -> Value {
    match t {
        Some(t) => json!({"seconds": t.seconds, "nanos": t.nanos}),
        None => Value::Null,
    }
}

macro_rules! assertion_field {
    () => {
        fn person_assertion(&self) -> &str {
            &self.person_assertion
        }
        fn set_person_assertion(&mut self, jws: String) {
            self.person_assertion = jws;
        }
    };
}

impl PersonBound for GrantConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/Grant";
    fn person(&self) -> Option<&str> {
        Some(&self.subject_id)
    }
    fn terms_json(&self) -> Value {
        json!({
            "subject_id": self.subject_id,
            "grantee_agency": self.grantee_agency,
            "record_types": self.record_types,
            "purpose": self.purpose,
            "source_agencies": self.source_agencies,
            "valid_from": timestamp(self.valid_from.as_ref()),
            "valid_until": timestamp(self.valid_until.as_ref()),
            "evidence_ref": self.evidence_ref,
            "request_id": self.request_id,
        })
    }
    assertion_field!();
}

impl PersonBound for RevokeConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/Revoke";
    fn person(&self) -> Option<&str> {
        None
    }
    fn terms_json(&self) -> Value {
        json!({"consent_id": self.consent_id, "reason": self.reason})
    }
    assertion_field!();
}

impl PersonBound for GetConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/Get";
    fn person(&self) -> Option<&str> {
        None
    }
    fn terms_json(&self) -> Value {
        json!({"consent_id": self.consent_id})
    }
    assertion_field!();
}

impl PersonBound for ListConsentsRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/List";
    fn person(&self) -> Option<&str> {
        Some(&self.subject_id)
    }
    fn terms_json(&self) -> Value {
        json!({
            "subject_id": self.subject_id,
            "grantee_agency": self.grantee_agency,
            "states": self.states,
        })
    }
    assertion_field!();
}

impl PersonBound for ApproveConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/ApproveConsent";
    fn person(&self) -> Option<&str> {
        None
    }
    fn terms_json(&self) -> Value {
        json!({
            "consent_id": self.consent_id,
            "record_types": self.record_types,
            "source_agencies": self.source_agencies,
            "valid_until": timestamp(self.valid_until.as_ref()),
        })
    }
    assertion_field!();
}

impl PersonBound for RejectConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/RejectConsent";
    fn person(&self) -> Option<&str> {
        None
    }
    fn terms_json(&self) -> Value {
        json!({"consent_id": self.consent_id, "reason": self.reason})
    }
    assertion_field!();
}

impl PersonBound for PauseConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/PauseConsent";
    fn person(&self) -> Option<&str> {
        None
    }
    fn terms_json(&self) -> Value {
        json!({"consent_id": self.consent_id})
    }
    assertion_field!();
}

impl PersonBound for ResumeConsentRequest {
    const ACTION: &'static str = "/samverka.v1.Consents/ResumeConsent";
    fn person(&self) -> Option<&str> {
        None
    }
    fn terms_json(&self) -> Value {
        json!({"consent_id": self.consent_id})
    }
    assertion_field!();
}

impl PersonBound for ListAccessEventsRequest {
    const ACTION: &'static str = "/samverka.v1.AccessLog/List";
    fn person(&self) -> Option<&str> {
        Some(&self.subject_id)
    }
    fn terms_json(&self) -> Value {
        let mut terms = json!({
            "subject_id": self.subject_id,
            "from": timestamp(self.from.as_ref()),
            "to": timestamp(self.to.as_ref()),
            "page_size": self.page_size,
            "page_token": self.page_token,
        });
        // Only when set, so that assertions of registrars written before
        // the field existed still match.
        if self.newest_first {
            terms["newest_first"] = Value::Bool(true);
        }
        if !self.agency.is_empty() {
            terms["agency"] = Value::String(self.agency.clone());
        }
        terms
    }
    assertion_field!();
}

impl PersonBound for DeclareMeritRequest {
    const ACTION: &'static str = "/samverka.v1.SelfDeclaredMeritService/DeclareMerit";
    fn person(&self) -> Option<&str> {
        Some(&self.subject_id)
    }
    fn terms_json(&self) -> Value {
        let m = self.merit.clone().unwrap_or_default();
        json!({
            "subject_id": self.subject_id,
            "title": m.title,
            "description": m.description,
            "skill_concepts": m.skill_concepts,
            "start_date": m.start_date,
            "end_date": m.end_date,
        })
    }
    assertion_field!();
}

impl PersonBound for ListMeritsRequest {
    const ACTION: &'static str = "/samverka.v1.SelfDeclaredMeritService/ListMerits";
    fn person(&self) -> Option<&str> {
        Some(&self.subject_id)
    }
    fn terms_json(&self) -> Value {
        json!({"subject_id": self.subject_id})
    }
    assertion_field!();
}

impl PersonBound for WithdrawMeritRequest {
    const ACTION: &'static str = "/samverka.v1.SelfDeclaredMeritService/WithdrawMerit";
    fn person(&self) -> Option<&str> {
        Some(&self.subject_id)
    }
    fn terms_json(&self) -> Value {
        json!({"subject_id": self.subject_id, "merit_id": self.merit_id})
    }
    assertion_field!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_sorted_compact_json_without_the_assertion() {
        let mut r = RevokeConsentRequest {
            consent_id: "c1".into(),
            reason: "åter\n\"x\"".into(),
            person_assertion: String::new(),
        };
        let before = r.terms_text();
        r.set_person_assertion("a.b.c".into());
        assert_eq!(r.terms_text(), before);
        assert_eq!(before, r#"{"consent_id":"c1","reason":"åter\n\"x\""}"#);
        let g = GrantConsentRequest {
            valid_until: Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 7,
            }),
            record_types: vec!["b".into(), "a".into()],
            ..Default::default()
        };
        assert_eq!(
            g.terms_text(),
            r#"{"evidence_ref":"","grantee_agency":"","purpose":"","record_types":["b","a"],"request_id":"","source_agencies":[],"subject_id":"","valid_from":null,"valid_until":{"nanos":7,"seconds":5}}"#
        );
    }
}
