//! The label set kept with every answer the server remembers: the groups of a cached query
//! result and the items of a remembered answer.
//!
//! A sorted vector rather than a `BTreeMap`: a `BTreeMap` allocates a node for eleven entries
//! (about 540 bytes for `String` pairs) however few it holds, and these sets hold one to four
//! labels, thousands of times over. Lookups are binary searches over those few entries.

pub type Labels = litemap::LiteMap<Label, Label>;

/// A label name or value: Prometheus' label names and most values (namespaces, job names,
/// vertex ids) are under 24 bytes and stay inline, without an allocation of their own.
pub type Label = compact_str::CompactString;

/// A label's value by name, from either kind of label set: samples as parsed keep a
/// `BTreeMap`, kept answers [`Labels`].
pub trait LabelValue {
    fn label(&self, name: &str) -> Option<&str>;
}

impl LabelValue for std::collections::BTreeMap<String, String> {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl LabelValue for Labels {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(Label::as_str)
    }
}

/// Writes labels as a JSON object, as Kubernetes' `metricLabels` (`map[string]string`) is
/// read: an empty set included, which `LiteMap`'s own serde support writes as `[]`.
pub fn serialize_as_map<S: serde::Serializer>(labels: &Labels, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The same labels, from any map of them.
pub fn from_map<'a, S: AsRef<str> + 'a>(map: impl IntoIterator<Item = (&'a S, &'a S)>) -> Labels {
    map.into_iter()
        .map(|(k, v)| (Label::from(k.as_ref()), Label::from(v.as_ref())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Wrapped<'a>(#[serde(serialize_with = "serialize_as_map")] &'a Labels);

    #[test]
    fn labels_stay_sorted_and_serialize_as_a_json_object() {
        let mut l = Labels::new();
        assert_eq!(serde_json::to_string(&Wrapped(&l)).unwrap(), "{}");
        l.insert("task_id".into(), "t1".into());
        l.insert("job_name".into(), "orders".into());
        assert_eq!(l.get("job_name").map(Label::as_str), Some("orders"));
        assert_eq!(
            serde_json::to_string(&Wrapped(&l)).unwrap(),
            r#"{"job_name":"orders","task_id":"t1"}"#
        );
    }
}
