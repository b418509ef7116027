//! Property-based fuzzing (proptest) of payload validation and the delivery codec: arbitrary
//! input never panics, accepted input obeys the SPEC patterns, and every payload the Redis
//! scripts can publish parses back to what was sent. Bounded (a fixed number of cases) so
//! it runs in CI; proptest saves failing seeds in its regression file beside this test, and
//! replayed first on every later run (the corpus, kept in git).

use chat::protocol::{self, LogIn, NewMessage, RoomMessage, RoomRef, SendMessage};
use chat::store::Delivery;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("username".to_owned()),
                    Just("message".to_owned()),
                    Just("room".to_owned()),
                    Just("token".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn spec_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn payload_parsing_never_panics_and_validation_obeys_the_spec(v in json_value()) {
        // As a packet carries it: ["event", payload].
        let data = |event: &str| serde_json::to_string(&serde_json::json!([event, v])).unwrap();
        if let Ok(req) = protocol::parse::<SendMessage>("send message", &data("send message")) {
            let ok = protocol::validate_username(&req.username).is_ok();
            prop_assert_eq!(ok, spec_name(&req.username, 32));
            let _ = protocol::validate_text(&req.message, 16);
        }
        if let Ok(req) = protocol::parse::<LogIn>("log in", &data("log in")) {
            let _ = protocol::validate_username(&req.username);
        }
        if let Ok(req) = protocol::parse::<RoomRef>("join room", &data("join room")) {
            prop_assert_eq!(protocol::validate_room(&req.room).is_ok(), spec_name(&req.room, 64));
        }
        let _ = protocol::parse::<RoomMessage>("room message", &data("room message"));
    }

    #[test]
    fn any_text_after_the_event_name_is_decoded_or_refused(tail in ".{0,64}") {
        let _ = protocol::parse::<SendMessage>("send message", &format!(r#"["send message",{tail}"#));
        let _ = protocol::parse::<SendMessage>("send message", &tail);
    }

    #[test]
    fn names_are_accepted_exactly_when_they_match_the_pattern(s in ".{0,70}") {
        prop_assert_eq!(protocol::validate_username(&s).is_ok(), spec_name(&s, 32));
        prop_assert_eq!(protocol::validate_room(&s).is_ok(), spec_name(&s, 64));
    }

    #[test]
    fn text_limits_count_bytes(s in ".{0,40}", max in 0usize..60) {
        let r = protocol::validate_text(&s, max);
        prop_assert_eq!(r.is_ok(), !s.is_empty() && s.len() <= max);
    }

    #[test]
    fn arbitrary_channel_payloads_never_panic(s in "(m|r|d|x)?\n?.{0,80}") {
        let _ = Delivery::parse(&s);
    }

    #[test]
    fn direct_payloads_round_trip(
        to in "[A-Za-z0-9_.-]{1,32}",
        from in "[A-Za-z0-9_.-]{1,32}",
        ms in any::<u64>(),
        seq in any::<u32>(),
        sent_at in any::<u64>(),
        text in "(?s).{1,200}",
    ) {
        // Encoded by the same code that hands the SEND script its payload.
        let id = format!("{ms}-{seq}");
        let payload = Delivery::Direct {
            to: to.clone(),
            message: NewMessage {
                id: id.clone(),
                from: from.clone(),
                message: text.clone(),
                sent_at,
                room: None,
            },
        }
        .encode();
        match Delivery::parse(&payload) {
            Some(Delivery::Direct { to: t, message }) => {
                prop_assert_eq!(t, to);
                prop_assert_eq!(message.id, id);
                prop_assert_eq!(message.from, from);
                prop_assert_eq!(message.sent_at, sent_at);
                prop_assert_eq!(message.message, text);
            }
            other => prop_assert!(false, "parsed as {:?}", other),
        }
    }

    #[test]
    fn room_payloads_round_trip(
        room in "[A-Za-z0-9_.-]{1,64}",
        from in "[A-Za-z0-9_.-]{1,32}",
        sid in "[A-Za-z0-9_-]{16}",
        text in "(?s).{1,200}",
    ) {
        let payload = Delivery::Room {
            except_sid: sid.clone(),
            message: NewMessage {
                id: "1-0".into(),
                from: from.clone(),
                message: text.clone(),
                sent_at: 5,
                room: Some(room.clone()),
            },
        }
        .encode();
        match Delivery::parse(&payload) {
            Some(Delivery::Room { except_sid, message }) => {
                prop_assert_eq!(except_sid, sid);
                prop_assert_eq!(message.room, Some(room));
                prop_assert_eq!(message.message, text);
            }
            other => prop_assert!(false, "parsed as {:?}", other),
        }
    }
}
