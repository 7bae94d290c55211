//! One merit of a passport: a record as an Open Badges 3.0
//! `OpenBadgeCredential` (built here), and the same credential read back
//! for people ([`Merit`]).
//!
//! The record's facts go where Open Badges puts them: what was achieved
//! (name, code, credits available, the awarding organisation as `creator`,
//! classification codes as `alignment`s, the grading scale as a
//! `resultDescription`) in the `Achievement`; what the person got (the
//! grade as a `Result`, credits earned, the period of an employment) in the
//! `AchievementSubject`. Four properties are samverka's own: `recordType`
//! (the record type it was read as), `meritKind` (see [`merit_kind`]),
//! `source` (the register it came from, and, for a merit the gateway
//! issues, when it received it) and an employment's `extentPercent`;
//! `creditUnit` names what `creditsAvailable` counts.

use samverka_proto::records::v1::{GradingScale, Record, record::Payload};
use serde_json::{Value, json};

use super::{OB_CONTEXT, VC_CONTEXT, agency_urn};

/// The kind of merit a record type holds, as a passport shows it:
/// - `formal`: education in the formal system (course results, degrees,
///   upper secondary grades, vocational diplomas);
/// - `non-formal`: organised learning outside it (an employer's training,
///   a folk high school course), `education.non_formal`;
/// - `validated`: a competence assessed through validation, whatever way
///   it was learnt, `competence.validated`;
/// - `work-experience`: an employment, `employment.*`;
/// - `self-declared`: what the person says of themselves, attested by no
///   one, `competence.self_declared`;
/// - `other`: a register's own type (one `records.proto` does not
///   describe), whose kind samverka cannot tell.
pub fn merit_kind(record_type: &str) -> &'static str {
    match record_type {
        SELF_DECLARED => "self-declared",
        "competence.validated" => "validated",
        "education.non_formal" => "non-formal",
        "education.course_result"
        | "education.degree"
        | "education.upper_secondary_grade"
        | "education.vocational_diploma" => "formal",
        t if t.starts_with("employment.") => "work-experience",
        _ => "other",
    }
}

/// The record type of the merits people declare themselves. The gateway
/// keeps them; no register may serve this type.
pub const SELF_DECLARED: &str = "competence.self_declared";

/// Who a merit's credential is about and who issues it: the same for
/// every merit of one passport.
pub struct Holder<'a> {
    /// The person's hashed identity (an `IdentityObject`).
    pub identity: &'a Value,
    /// The credential subject's id.
    pub subject_id: &'a str,
    /// The issuer's `Profile`.
    pub issuer: &'a Value,
    /// `validFrom`, RFC 3339.
    pub valid_from: &'a str,
}

/// A date of a record (`YYYY-MM-DD`) as the date-time Open Badges wants
/// (midnight UTC); a full RFC 3339 time is kept; anything else is left out.
fn date_time(value: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if time::Date::parse(value, date).is_ok() {
        Some(format!("{value}T00:00:00Z"))
    } else if time::OffsetDateTime::parse(value, &Rfc3339).is_ok() {
        Some(value.to_owned())
    } else {
        None
    }
}

/// Where a classification code is described: the code's own URI where
/// the framework publishes one, else the framework's description.
fn target_url(framework: &str, code: &str) -> String {
    match framework {
        _ if code.starts_with("http://") || code.starts_with("https://") => code.to_owned(),
        "EQF" => format!("http://data.europa.eu/snb/eqf/{code}"),
        "ISCO-08" => format!("http://data.europa.eu/esco/isco/C{code}"),
        "JobTech taxonomy" => format!("https://data.jobtechdev.se/taxonomy/concept/{code}"),
        "SSYK 2012" => "https://www.scb.se/ssyk".to_owned(),
        _ => "https://www.scb.se/sun".to_owned(),
    }
}

/// An Open Badges `Alignment` to a public classification.
fn alignment(framework: &str, code: &str) -> Value {
    json!({
        "type": ["Alignment"],
        "targetFramework": framework,
        "targetCode": code,
        "targetName": format!("{framework} {code}"),
        "targetUrl": target_url(framework, code),
    })
}

/// Skill concepts as alignments: ESCO URIs, else JobTech concept ids.
fn skills(concepts: &[String]) -> impl Iterator<Item = Value> + '_ {
    concepts.iter().map(|s| {
        let framework = if s.starts_with("http://data.europa.eu/esco/") {
            "ESCO"
        } else {
            "JobTech taxonomy"
        };
        alignment(framework, s)
    })
}

fn eqf(level: u32) -> Option<Value> {
    (level > 0).then(|| alignment("EQF", &level.to_string()))
}

fn grading_scale(scale: i32) -> (&'static str, &'static [&'static str]) {
    match GradingScale::try_from(scale).unwrap_or(GradingScale::Unspecified) {
        GradingScale::UGVg => ("U/G/VG", &["U", "G", "VG"]),
        GradingScale::U345 => ("U/3/4/5", &["U", "3", "4", "5"]),
        GradingScale::Ects => ("ECTS A-F", &["A", "B", "C", "D", "E", "FX", "F"]),
        GradingScale::AF => ("A-F", &["A", "B", "C", "D", "E", "F"]),
        GradingScale::Unspecified => ("", &[]),
    }
}

/// Puts `value` under `key` unless it is empty (an empty string, a zero,
/// an empty list or null).
fn set(entry: &mut Value, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if !empty {
        entry[key] = value;
    }
}

/// What one record says, gathered before it is put in Open Badges' shape.
#[derive(Default)]
struct Facts {
    achievement_type: &'static str,
    name: String,
    code: String,
    field: String,
    credits: f64,
    credit_unit: &'static str,
    grade: String,
    scale: (&'static str, &'static [&'static str]),
    awarded: String,
    start: String,
    end: String,
    by_org: String,
    by_name: String,
    detail: String,
    description: String,
    extent_percent: u32,
    alignments: Vec<Value>,
}

fn facts(payload: Option<&Payload>) -> Facts {
    let mut f = Facts::default();
    match payload {
        Some(Payload::CourseResult(c)) => {
            f.achievement_type = "Course";
            f.name = c.course_name.clone();
            f.code = c.course_code.clone();
            (f.credits, f.credit_unit) = (c.credits, "hp");
            (f.grade, f.scale) = (c.grade.clone(), grading_scale(c.grading_scale));
            f.awarded = c.examination_date.clone();
            (f.by_org, f.by_name) = (c.institution_org_number.clone(), c.institution_name.clone());
            f.alignments = (!c.sun_field.is_empty())
                .then(|| alignment("SUN 2020 field", &c.sun_field))
                .into_iter()
                .collect();
        }
        Some(Payload::Degree(d)) => {
            f.achievement_type = match d.eqf_level {
                6 => "BachelorDegree",
                7 => "MasterDegree",
                8 => "DoctoralDegree",
                _ => "Degree",
            };
            f.name = d.title.clone();
            f.field = d.main_field.clone();
            (f.credits, f.credit_unit) = (d.credits, "hp");
            f.awarded = d.award_date.clone();
            (f.by_org, f.by_name) = (d.institution_org_number.clone(), d.institution_name.clone());
            f.alignments = [
                (!d.sun_level.is_empty()).then(|| alignment("SUN 2020 level", &d.sun_level)),
                (!d.sun_field.is_empty()).then(|| alignment("SUN 2020 field", &d.sun_field)),
                eqf(d.eqf_level),
            ]
            .into_iter()
            .flatten()
            .collect();
        }
        Some(Payload::UpperSecondaryGrade(g)) => {
            f.achievement_type = "Course";
            f.name = g.course_name.clone();
            f.code = g.course_code.clone();
            (f.credits, f.credit_unit) = (f64::from(g.points), "gymnasiepoäng");
            (f.grade, f.scale) = (g.grade.clone(), grading_scale(GradingScale::AF as i32));
            f.awarded = g.grade_date.clone();
            f.detail = g.programme_code.clone();
            (f.by_org, f.by_name) = (g.school_org_number.clone(), g.school_name.clone());
        }
        Some(Payload::VocationalDiploma(v)) => {
            f.achievement_type = "Diploma";
            f.name = v.programme_name.clone();
            f.detail = v.diploma_kind.clone();
            (f.credits, f.credit_unit) = (f64::from(v.yh_credits), "yh-poäng");
            f.awarded = v.issue_date.clone();
            (f.by_org, f.by_name) = (v.provider_org_number.clone(), v.provider_name.clone());
            f.alignments = [
                (!v.sun_field.is_empty()).then(|| alignment("SUN 2020 field", &v.sun_field)),
                eqf(v.eqf_level),
            ]
            .into_iter()
            .flatten()
            .collect();
        }
        Some(Payload::EmploymentPeriod(p)) => {
            f.achievement_type = "ext:EmploymentPeriod";
            f.name = p.occupation_title.clone();
            (f.start, f.end) = (p.start_date.clone(), p.end_date.clone());
            f.extent_percent = p.extent_percent;
            (f.by_org, f.by_name) = (p.employer_org_number.clone(), p.employer_name.clone());
            f.alignments = [
                (!p.ssyk_code.is_empty()).then(|| alignment("SSYK 2012", &p.ssyk_code)),
                (!p.isco_code.is_empty()).then(|| alignment("ISCO-08", &p.isco_code)),
            ]
            .into_iter()
            .flatten()
            .collect();
        }
        Some(Payload::ValidatedCompetence(c)) => {
            f.achievement_type = "Competency";
            f.name = c.competence_area.clone();
            f.detail = c.method.clone();
            f.awarded = c.assessment_date.clone();
            (f.by_org, f.by_name) = (c.assessor_org_number.clone(), c.assessor_name.clone());
            f.alignments = skills(&c.skill_concepts).chain(eqf(c.eqf_level)).collect();
        }
        Some(Payload::NonFormalLearning(n)) => {
            f.achievement_type = "CertificateOfCompletion";
            f.name = n.title.clone();
            f.description = n.description.clone();
            f.detail = n.provider_kind.replace('_', " ");
            (f.credits, f.credit_unit) = (f64::from(n.hours), "hours");
            (f.start, f.end) = (n.start_date.clone(), n.completion_date.clone());
            f.awarded = n.completion_date.clone();
            (f.by_org, f.by_name) = (n.provider_org_number.clone(), n.provider_name.clone());
            f.alignments = skills(&n.skill_concepts).chain(eqf(n.eqf_level)).collect();
        }
        Some(Payload::SelfDeclaredMerit(m)) => {
            f.achievement_type = "Achievement";
            f.name = m.title.clone();
            f.description = m.description.clone();
            (f.start, f.end) = (m.start_date.clone(), m.end_date.clone());
            f.alignments = skills(&m.skill_concepts).collect();
        }
        Some(Payload::Other(any)) => {
            f.achievement_type = "Achievement";
            f.name = any.type_url.clone();
        }
        None => f.achievement_type = "Achievement",
    }
    f
}

/// Who a merit is by and who vouches for it.
struct Origin {
    /// For the achievement's description.
    by: String,
    /// The achievement's criteria.
    narrative: String,
    /// The achievement's `creator`.
    creator: Value,
    /// The credential's `issuer`.
    issuer: Value,
}

/// A self-declared merit is the holder's own: created and issued by the
/// holder, kept by the gateway, attested by no one. Any other is its
/// organisation's, recorded by its register and issued by `holder.issuer`.
fn origin(
    record: &Record,
    f: &Facts,
    source_name: &str,
    achievement_id: &str,
    holder: &Holder<'_>,
) -> Origin {
    if merit_kind(&record.record_type) == "self-declared" {
        let own = json!({
            "id": holder.subject_id,
            "type": ["Profile"],
            "name": "The holder (self-declared)",
        });
        return Origin {
            by: "declared by the holder".to_owned(),
            narrative: format!(
                "Declared by the holder through a registrar's e-service; kept by the gateway (organisation number {}) and attested by no one.",
                record.source_agency
            ),
            creator: own.clone(),
            issuer: own,
        };
    }
    let mut creator = json!({
        "id": if f.by_org.is_empty() { format!("{achievement_id}#creator") } else { agency_urn(&f.by_org) },
        "type": ["Profile"],
    });
    set(&mut creator, "name", json!(f.by_name));
    Origin {
        by: if f.by_name.is_empty() {
            "an organisation the register does not name".to_owned()
        } else {
            f.by_name.clone()
        },
        narrative: format!(
            "Recorded as {} in the register of {source_name} (organisation number {}).",
            record.record_type, record.source_agency
        ),
        creator,
        issuer: holder.issuer.clone(),
    }
}

/// One record as an `OpenBadgeCredential` issued by `holder.issuer`;
/// `retrieved_at` (when the gateway received it) is left out when empty.
/// A self-declared merit is issued and created by the holder, so that it
/// never reads as vouched for by an organisation.
pub fn open_badge(
    record: &Record,
    source_name: &str,
    retrieved_at: &str,
    holder: &Holder<'_>,
) -> Value {
    let f = facts(record.payload.as_ref());
    let key = format!("{}:{}", record.source_agency, record.record_id);
    let achievement_id = format!("urn:samverka:achievement:{key}");
    let name = if f.name.is_empty() {
        record.record_type.clone()
    } else {
        f.name.clone()
    };
    let origin = origin(record, &f, source_name, &achievement_id, holder);
    let mut achievement = json!({
        "id": achievement_id,
        "type": ["Achievement"],
        "achievementType": f.achievement_type,
        "name": name,
        "description": if f.description.is_empty() { format!("{name}, {}", origin.by) } else { f.description.clone() },
        "criteria": { "narrative": origin.narrative },
    });
    set(&mut achievement, "humanCode", json!(f.code));
    set(&mut achievement, "fieldOfStudy", json!(f.field));
    set(&mut achievement, "specialization", json!(f.detail));
    set(&mut achievement, "creditsAvailable", json!(f.credits));
    set(&mut achievement, "creditUnit", json!(f.credit_unit));
    achievement["creator"] = origin.creator;
    set(&mut achievement, "alignment", Value::Array(f.alignments));

    let mut subject = json!({
        "id": holder.subject_id,
        "type": ["AchievementSubject"],
        "identifier": [holder.identity],
        "achievement": achievement,
    });
    if !f.grade.is_empty() {
        let scale_id = format!("{achievement_id}#grade");
        let mut description = json!({
            "id": scale_id,
            "type": ["ResultDescription"],
            "name": format!("Grade ({})", f.scale.0),
            "resultType": "LetterGrade",
        });
        set(&mut description, "allowedValue", json!(f.scale.1));
        subject["achievement"]["resultDescription"] = json!([description]);
        subject["result"] = json!([{
            "type": ["Result"],
            "resultDescription": scale_id,
            "value": f.grade,
        }]);
    }
    if f.extent_percent > 0 {
        subject["extentPercent"] = json!(f.extent_percent);
    }
    if let Some(start) = date_time(&f.start) {
        subject["activityStartDate"] = json!(start);
    }
    if let Some(end) = date_time(&f.end) {
        subject["activityEndDate"] = json!(end);
    }
    let mut credential = json!({
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": format!("urn:samverka:record:{key}"),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": name,
        "issuer": origin.issuer,
        "validFrom": holder.valid_from,
        "credentialSubject": subject,
        "recordType": record.record_type,
        "meritKind": merit_kind(&record.record_type),
        "source": {
            "agency": record.source_agency,
            "name": source_name,
        },
    });
    if !retrieved_at.is_empty() {
        credential["source"]["retrievedAt"] = json!(retrieved_at);
    }
    if let Some(awarded) = date_time(&f.awarded) {
        credential["awardedDate"] = json!(awarded);
    }
    credential
}

/// A merit of a verified passport, for people.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merit {
    /// The record type it was read as (`education.degree`).
    pub record_type: String,
    /// Open Badges' `achievementType` (`Course`, `ext:EmploymentPeriod`).
    pub achievement_type: String,
    /// The achievement's name.
    pub name: String,
    /// A course code, when there is one.
    pub code: String,
    /// The grade, when there is one.
    pub result: String,
    /// Credits of the course or programme.
    pub credits: Option<f64>,
    /// What the credits are counted in (`hp`).
    pub credit_unit: String,
    /// `YYYY-MM-DD` of an employment's start.
    pub start: String,
    /// `YYYY-MM-DD` of an employment's end (empty: ongoing).
    pub end: String,
    /// `YYYY-MM-DD` it was awarded.
    pub awarded: String,
    /// The organisation that awarded it (the employer, the university).
    pub creator: String,
    /// Classification codes as `(framework, code)`.
    pub codes: Vec<(String, String)>,
    /// The name of the register's adapter it came from.
    pub source_name: String,
    /// The agency whose register it came from.
    pub source_agency: String,
    /// When the gateway received it.
    pub retrieved_at: String,
    /// The credential's issuer (who attests it).
    pub attested_by: String,
    /// Whether it carries its source's own signed credential (else the
    /// gateway relayed it, unattested by the source).
    pub source_attested: bool,
}

fn day(v: &Value) -> String {
    v.as_str()
        .map(|s| s.split('T').next().unwrap_or(s).to_owned())
        .unwrap_or_default()
}

impl Merit {
    /// Its kind (`formal`, `non-formal`, `validated`, `work-experience`,
    /// `self-declared`; see [`merit_kind`]), from its record type, never
    /// from what the credential says of itself.
    pub fn kind(&self) -> &'static str {
        merit_kind(&self.record_type)
    }

    /// The merit an `OpenBadgeCredential` of a passport holds.
    pub fn of(credential: &Value) -> Merit {
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let subject = &credential["credentialSubject"];
        let a = &subject["achievement"];
        Merit {
            record_type: s(credential, "recordType"),
            achievement_type: s(a, "achievementType"),
            name: s(a, "name"),
            code: s(a, "humanCode"),
            result: s(&subject["result"][0], "value"),
            credits: a["creditsAvailable"].as_f64(),
            credit_unit: s(a, "creditUnit"),
            start: day(&subject["activityStartDate"]),
            end: day(&subject["activityEndDate"]),
            awarded: day(&credential["awardedDate"]),
            creator: s(&a["creator"], "name"),
            codes: a["alignment"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|al| (s(al, "targetFramework"), s(al, "targetCode")))
                        .collect()
                })
                .unwrap_or_default(),
            source_name: s(&credential["source"], "name"),
            source_agency: s(&credential["source"], "agency"),
            retrieved_at: s(&credential["source"], "retrievedAt"),
            attested_by: s(&credential["issuer"], "name"),
            // A self-declared merit is never shown as attested, whatever
            // it carries.
            source_attested: credential.get("attestation").is_some()
                && merit_kind(&s(credential, "recordType")) != "self-declared",
        }
    }

    /// The merit in a line for people: what, its credits, result and
    /// dates, who awarded it and its classification codes, where it came
    /// from.
    pub fn describe(&self) -> String {
        let mut line = [self.achievement_type.as_str(), &self.code, &self.name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(credits) = self.credits {
            line.push_str(&format!(", {credits} {}", self.credit_unit));
        }
        if !self.result.is_empty() {
            line.push_str(&format!(", result {}", self.result));
        }
        if !self.start.is_empty() {
            let end = if self.end.is_empty() {
                "now"
            } else {
                &self.end
            };
            line.push_str(&format!(", {} to {end}", self.start));
        }
        if !self.awarded.is_empty() {
            line.push_str(&format!(", {}", self.awarded));
        }
        line.push_str(&format!(
            "\n        {} merit, by {}",
            self.kind(),
            self.creator
        ));
        if !self.codes.is_empty() {
            let codes: Vec<String> = self.codes.iter().map(|(f, c)| format!("{f} {c}")).collect();
            line.push_str(&format!("; {}", codes.join("; ")));
        }
        line.push_str(&format!(
            "\n        from {} ({})",
            self.source_name, self.source_agency
        ));
        if !self.retrieved_at.is_empty() {
            line.push_str(&format!(", retrieved {}", self.retrieved_at));
        }
        line.push_str(if self.kind() == "self-declared" {
            ", declared by the person, attested by no one"
        } else if self.source_attested {
            ", signed by the source"
        } else {
            ", relayed by the gateway (not signed by the source)"
        });
        line
    }
}

#[cfg(test)]
mod tests;
