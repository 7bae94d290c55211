//! Swedish and English: the texts in `locales/*.toml`, the language from
//! the `lang` cookie (set by the switch link) or else `Accept-Language`.

use std::collections::BTreeMap;

/// A language of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Svenska.
    Sv,
    /// English.
    En,
}

impl Lang {
    /// Its code (`sv`, `en`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The other one (for the switch link).
    pub fn other(self) -> Lang {
        match self {
            Lang::Sv => Lang::En,
            Lang::En => Lang::Sv,
        }
    }

    /// `sv` or `en`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "sv" => Some(Lang::Sv),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first of `sv`/`en` an `Accept-Language` header names, by its
    /// quality values; Swedish when it names neither.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or("").split(',') {
            let mut fields = part.trim().split(';');
            let tag = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "sv" => Lang::Sv,
                "en" => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Sv, |(_, l)| l)
    }
}

/// Both languages' texts.
#[derive(Debug)]
pub struct Texts {
    sv: toml::Table,
    en: toml::Table,
}

impl Texts {
    /// The texts compiled into the portal.
    pub fn bundled() -> Texts {
        let parse = |s: &str| {
            s.parse::<toml::Table>()
                .expect("the bundled locales are TOML")
        };
        Texts {
            sv: parse(include_str!("../locales/sv.toml")),
            en: parse(include_str!("../locales/en.toml")),
        }
    }

    /// All texts of `lang`.
    pub fn of(&self, lang: Lang) -> &toml::Table {
        match lang {
            Lang::Sv => &self.sv,
            Lang::En => &self.en,
        }
    }

    /// One text (`key`, or `table.key`); the key itself when missing.
    pub fn get(&self, lang: Lang, key: &str) -> String {
        let table = self.of(lang);
        let value = match key.split_once('|') {
            Some((t, k)) => table.get(t).and_then(|t| t.get(k)),
            None => table.get(key),
        };
        value
            .and_then(|v| v.as_str())
            .map_or_else(|| key.to_owned(), str::to_owned)
    }

    /// Record types in words, joined.
    pub fn record_types(&self, lang: Lang, types: &[String]) -> String {
        types
            .iter()
            .map(|t| self.named(lang, "record_type_names", t))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `value` as `table` names it, or `value` itself.
    pub fn named(&self, lang: Lang, table: &str, value: &str) -> String {
        self.of(lang)
            .get(table)
            .and_then(|t| t.get(value))
            .and_then(|v| v.as_str())
            .map_or_else(|| value.to_owned(), str::to_owned)
    }
}

/// Every key path of `table` (`a`, `t|k`).
fn keys(table: &toml::Table) -> BTreeMap<String, ()> {
    let mut out = BTreeMap::new();
    for (k, v) in table {
        match v.as_table() {
            Some(t) => out.extend(t.keys().map(|kk| (format!("{k}|{kk}"), ()))),
            None => {
                out.insert(k.clone(), ());
            }
        }
    }
    out
}

/// The keys one language has and the other lacks (empty when complete).
pub fn missing(texts: &Texts) -> Vec<String> {
    let sv = keys(&texts.sv);
    let en = keys(&texts.en);
    sv.keys()
        .filter(|k| !en.contains_key(*k))
        .chain(en.keys().filter(|k| !sv.contains_key(*k)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_text() {
        assert_eq!(missing(&Texts::bundled()), Vec::<String>::new());
    }

    #[test]
    fn accept_language_picks_by_quality_and_defaults_to_swedish() {
        assert_eq!(Lang::negotiate(Some("en-GB,en;q=0.9,sv;q=0.8")), Lang::En);
        assert_eq!(Lang::negotiate(Some("de, sv-SE;q=0.5, en;q=0.4")), Lang::Sv);
        assert_eq!(Lang::negotiate(Some("fr")), Lang::Sv);
        assert_eq!(Lang::negotiate(Some("en;q=0")), Lang::Sv);
        assert_eq!(Lang::negotiate(None), Lang::Sv);
    }

    #[test]
    fn names_fall_back_to_the_code() {
        let t = Texts::bundled();
        assert_eq!(
            t.record_types(Lang::Sv, &["employment.period".into(), "x.y".into()]),
            "anställningsperioder, x.y"
        );
        assert_eq!(t.get(Lang::En, "status_names|paused"), "Paused");
    }
}
