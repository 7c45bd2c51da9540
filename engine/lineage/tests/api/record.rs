//! The records: a stage's outputs, and the record of a registry move in a
//! tag's message.

use std::collections::BTreeMap;

use gourd_lineage::registry::record::{compose, split};
use gourd_lineage::registry::{Action, MoveRecord, Previous};

use crate::common::record;

#[test]
fn the_output_holding_a_path() {
    let mut r = record("train", "k", "t");
    r.outs = BTreeMap::from([
        ("data/clean".to_string(), "d1".to_string()),
        ("model.pt".to_string(), "d2".to_string()),
        ("data/cleaner.csv".to_string(), "d3".to_string()),
    ]);
    assert_eq!(r.output_holding("model.pt"), Some(("model.pt", "d2")));
    assert_eq!(r.output_holding("data/clean"), Some(("data/clean", "d1")));
    assert_eq!(r.output_holding("data/clean/a/b.csv"), Some(("data/clean", "d1")));
    assert_eq!(r.output_holding("data/cleaner.csv"), Some(("data/cleaner.csv", "d3")));
    assert_eq!(r.output_holding("data/clean.csv"), None, "a name that only starts like an output");
    assert_eq!(r.output_holding("data"), None, "a folder above an output");
    assert_eq!(r.output_holding("model.pt/x"), Some(("model.pt", "d2")));
    assert_eq!(r.output_holding("other"), None);
}

#[test]
fn a_move_record_reads_back_after_the_human_message() {
    let record = MoveRecord {
        action: Some(Action::Assign),
        version: Some("v0.0.2".into()),
        stage: Some("prod".into()),
        digest: Some("ab".repeat(32)),
        previous: Some(Previous { version: "v0.0.1".into(), digest: None, tag: Some("m#prod#1".into()) }),
        gates: vec![serde_json::json!({"gate": "accuracy >= 0.9", "passed": true})],
        gourd_version: "0.1.0".into(),
        ..MoveRecord::default()
    };
    let message = compose("Better on the new data\n\nsecond paragraph\n\n\n", &record);
    let json = serde_json::to_string(&record).unwrap();
    assert_eq!(message, format!("Better on the new data\n\nsecond paragraph\n\ngourd-record-v1: {json}\n"));
    assert_eq!(split(&message), ("Better on the new data\n\nsecond paragraph".to_string(), Some(record.clone())));
    // A message that is only the record, and one with text after it.
    let bare = compose("", &record);
    assert_eq!(bare, format!("\n\ngourd-record-v1: {json}\n"));
    assert_eq!(split(&bare), (String::new(), Some(record.clone())));
    assert_eq!(split(&format!("gourd-record-v1: {json}")), (String::new(), Some(record.clone())));
    assert_eq!(
        split(&format!("{message}Signed-off-by: x\n")),
        ("Better on the new data\n\nsecond paragraph".into(), Some(record))
    );
}

#[test]
fn messages_without_a_record_are_all_human() {
    assert_eq!(split("Assigning stage prod\n"), ("Assigning stage prod".to_string(), None));
    assert_eq!(split("  \n"), (String::new(), None));
    // A damaged record line: the human part stays, the record is absent.
    assert_eq!(split("Promote\n\ngourd-record-v1: {not json\n"), ("Promote".to_string(), None));
    // The marker inside a line is not a record.
    let quoted = "see gourd-record-v1: {}";
    assert_eq!(split(quoted), (quoted.to_string(), None));
}
