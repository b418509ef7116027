//! The store's calls pinned with the [`Recorder`]: exact keys and arguments, one round trip.

use super::recorder::{bulk, Recorder};
use super::*;
use redis::{RedisFuture, Value};

fn store(rec: &Recorder) -> Store<Recorder> {
    Store::new(
        rec.clone(),
        "chat:",
        "w0-abc",
        Duration::from_secs(1),
        InboxBounds {
            max_len: 1000,
            ttl: Duration::from_secs(60),
        },
    )
}

/// KEYS and ARGV every `worker.lua` script starts with, for instance `w0-abc`.
const WORKER_HEAD: [&str; 9] = [
    "2",
    "chat:workers",
    "chat:online",
    "w0-abc",
    "chat:{w:{}}:alive",
    "chat:{w:{}}:users",
    "chat:{w:{}}:rooms",
    "chat:{u:{}}:workers",
    "chat:{r:{}}:workers",
];

fn entry(id: &str, text: &str) -> Value {
    Value::Array(vec![
        bulk(id),
        Value::Array(vec![
            bulk("from"),
            bulk("alice"),
            bulk("message"),
            bulk(text),
            bulk("sentAt"),
            bulk("7"),
        ]),
    ])
}

#[tokio::test]
async fn send_runs_one_script_on_the_inbox_and_the_user_map() {
    let rec = Recorder::default().reply(Value::Array(vec![bulk("5-0")]));
    let id = store(&rec)
        .send("alice", "bob", "hi", 1_000_000)
        .await
        .unwrap();
    assert_eq!(id, "5-0");
    let sent = rec.sent();
    assert_eq!(sent.len(), 1, "one round trip");
    let cmd = &sent[0];
    assert_eq!(cmd[0], "EVALSHA");
    assert_eq!(cmd[2], "2", "two keys");
    assert_eq!(&cmd[3..5], ["chat:{u:bob}:inbox", "chat:{u:bob}:workers"]);
    assert_eq!(
        &cmd[5..],
        [
            "1000",
            "940000-0",
            "60000",
            "chat:{w:{}}:deliver",
            "b\n",
            "\n",
            "alice",
            "hi",
            "1000000",
            "m\nbob\n",
            "\nalice\n1000000\n"
        ]
    );
}

#[tokio::test]
async fn the_published_payload_is_the_delivery_encoding() {
    // What send_many.lua publishes for one message: head .. id .. middle .. text.
    let rec = Recorder::default().reply(Value::Array(vec![bulk("5-0")]));
    store(&rec)
        .send("alice", "bob", "hi\nthere", 9)
        .await
        .unwrap();
    let a = &rec.sent()[0];
    let published = [a[14].as_str(), "5-0", &a[15], &a[12]].concat();
    let expected = Delivery::Direct {
        to: "bob".into(),
        message: NewMessage {
            id: "5-0".into(),
            from: "alice".into(),
            message: "hi\nthere".into(),
            sent_at: 9,
            room: None,
        },
    };
    assert_eq!(published, expected.encode());
    assert_eq!(Delivery::parse(&published), Some(expected));
}

#[tokio::test]
async fn ack_publishes_the_encoded_receipt() {
    let rec = Recorder::default().reply(Value::Int(1));
    assert!(store(&rec).ack("bob", "5-0", "alice").await.unwrap());
    let cmd = &rec.sent()[0];
    assert_eq!(
        &cmd[2..],
        [
            "2",
            "chat:{u:bob}:inbox",
            "chat:{u:alice}:workers",
            "chat:{w:{}}:deliver",
            "d",
            "\n",
            "5-0",
            "alice\n5-0\nbob"
        ]
    );
    // ack_many.lua publishes head .. sep .. record for one receipt: the single receipt.
    let published = [cmd[6].as_str(), &cmd[7], &cmd[9]].concat();
    assert_eq!(
        published,
        Delivery::Delivered {
            sender: "alice".into(),
            id: "5-0".into(),
            to: "bob".into()
        }
        .encode()
    );
}

#[tokio::test]
async fn send_many_is_one_script_with_each_messages_payload_around_its_id() {
    let rec = Recorder::default().reply(Value::Array(vec![bulk("5-0"), bulk("6-0")]));
    let messages = [
        Outgoing {
            from: "alice".into(),
            to: "bob".into(),
            text: "hi\nthere".into(),
            sent_at: 1_000_000,
        },
        Outgoing {
            from: "carol".into(),
            to: "dave".into(),
            text: "yo".into(),
            sent_at: 1_000_001,
        },
    ];
    let ids: Vec<String> = store(&rec)
        .send_many(&messages)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["5-0", "6-0"]);
    let sent = rec.sent();
    assert_eq!(sent.len(), 1, "one round trip for both");
    let cmd = &sent[0];
    assert_eq!(cmd[0], "EVALSHA");
    assert_eq!(
        &cmd[2..7],
        [
            "4",
            "chat:{u:bob}:inbox",
            "chat:{u:bob}:workers",
            "chat:{u:dave}:inbox",
            "chat:{u:dave}:workers",
        ]
    );
    assert_eq!(
        &cmd[7..13],
        [
            "1000",
            "940000-0",
            "60000",
            "chat:{w:{}}:deliver",
            "b\n",
            "\n"
        ]
    );
    // Per message: from, text, sent_at, head, middle; head .. id .. middle .. text is its
    // delivery, and a batch of them parses back.
    let one = [cmd[16].as_str(), "5-0", &cmd[17], &cmd[14]].concat();
    let two = [cmd[21].as_str(), "6-0", &cmd[22], &cmd[19]].concat();
    let batch = [
        cmd[11].as_str(),
        &one.len().to_string(),
        &cmd[12],
        &one,
        &two.len().to_string(),
        &cmd[12],
        &two,
    ]
    .concat();
    match Delivery::parse(&batch) {
        Some(Delivery::Batch(ds)) => {
            assert_eq!(ds.len(), 2);
            assert!(matches!(&ds[0], Delivery::Direct { to, message }
                if to == "bob" && message.id == "5-0" && message.message == "hi\nthere"));
            assert!(matches!(&ds[1], Delivery::Direct { to, message }
                if to == "dave" && message.from == "carol" && message.sent_at == 1_000_001));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ack_many_is_one_script_whose_receipts_payload_parses_back() {
    let rec = Recorder::default().reply(Value::Int(2));
    let acks = [
        Ack {
            to: "bob".into(),
            id: "5-0".into(),
            sender: "alice".into(),
        },
        Ack {
            to: "bob".into(),
            id: "6-0".into(),
            sender: "carol".into(),
        },
    ];
    store(&rec)
        .ack_many(&acks.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let sent = rec.sent();
    assert_eq!(sent.len(), 1, "one round trip for both");
    let cmd = &sent[0];
    assert_eq!(
        &cmd[2..7],
        [
            "4",
            "chat:{u:bob}:inbox",
            "chat:{u:alice}:workers",
            "chat:{u:bob}:inbox",
            "chat:{u:carol}:workers",
        ]
    );
    assert_eq!(cmd[7], "chat:{w:{}}:deliver");
    assert_eq!(
        &cmd[10..],
        ["5-0", "alice\n5-0\nbob", "6-0", "carol\n6-0\nbob"]
    );
    // What ack_many.lua publishes to a worker holding both senders.
    let payload = [cmd[8].as_str(), &cmd[11], &cmd[13]].join(&cmd[9]);
    assert_eq!(
        Delivery::parse(&payload),
        Some(Delivery::Receipts(vec![
            ("alice".into(), "5-0".into(), "bob".into()),
            ("carol".into(), "6-0".into(), "bob".into()),
        ]))
    );
    assert_eq!(
        Delivery::parse(&[cmd[8].as_str(), &cmd[11]].join(&cmd[9])),
        Some(Delivery::Delivered {
            sender: "alice".into(),
            id: "5-0".into(),
            to: "bob".into()
        }),
        "one receipt is the single-receipt format"
    );
    assert!(store(&rec).ack_many(&[]).await.is_ok());
    assert_eq!(rec.sent().len(), 1, "nothing to record, no call");
}

#[tokio::test]
async fn room_send_passes_the_payload_around_the_id() {
    let rec = Recorder::default().reply(bulk("3-0"));
    let id = store(&rec)
        .room_send("lobby", "alice", "yo", 5, "SID")
        .await
        .unwrap();
    assert_eq!(id, "3-0");
    let cmd = &rec.sent()[0];
    assert_eq!(
        &cmd[2..],
        [
            "2",
            "chat:{r:lobby}:history",
            "chat:{r:lobby}:workers",
            "alice",
            "yo",
            "5",
            "50",
            "chat:{w:{}}:deliver",
            "r\nlobby\n",
            "\nalice\n5\nSID\n",
            "2592000"
        ]
    );
}

#[tokio::test]
async fn worker_scripts_get_the_key_templates() {
    let rec = Recorder::default()
        .reply(Value::Array(vec![Value::Int(1), Value::Int(0)]))
        .reply(Value::Int(1))
        .reply(Value::Int(1));
    let s = store(&rec);
    assert!(s.heartbeat(Duration::from_secs(5)).await.unwrap());
    s.resync(
        Duration::from_secs(5),
        true,
        &["bob".into()],
        &["lobby".into()],
    )
    .await
    .unwrap();
    s.remove_self().await.unwrap();
    let sent = rec.sent();
    let head = &WORKER_HEAD[..];
    assert_eq!(&sent[0][2..11], head);
    assert_eq!(&sent[0][11..], ["5000"]);
    assert_eq!(&sent[1][2..11], head);
    assert_eq!(&sent[1][11..], ["5000", "1", "1", "bob", "lobby"]);
    assert_eq!(&sent[2][2..], head);
    // Three different scripts.
    assert_ne!(sent[0][1], sent[1][1]);
    assert_ne!(sent[1][1], sent[2][1]);
}

#[tokio::test]
async fn login_parses_pending_entries_in_order() {
    let rec = Recorder::default().reply(Value::Array(vec![entry("1-0", "a"), entry("2-0", "b")]));
    let pending = store(&rec).login("bob").await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].id, "1-0");
    assert_eq!(pending[1].message, "b");
    assert_eq!(pending[1].sent_at, 7);
    let cmd = &rec.sent()[0];
    assert_eq!(
        &cmd[3..7],
        [
            "chat:{u:bob}:workers",
            "chat:{w:w0-abc}:users",
            "chat:online",
            "chat:{u:bob}:inbox"
        ]
    );
}

#[tokio::test]
async fn join_returns_history_oldest_first() {
    let rec = Recorder::default().reply(Value::Array(vec![entry("2-0", "m"), entry("1-0", "m")]));
    let h = store(&rec).join("lobby").await.unwrap();
    assert_eq!(h[0].id, "1-0");
    assert_eq!(h[0].room.as_deref(), Some("lobby"));
}

#[tokio::test]
async fn plain_commands_name_their_keys() {
    let rec = Recorder::default()
        .reply(Value::Array(vec![]))
        .reply(Value::Array(vec![bulk("alice")]))
        .reply(Value::SimpleString("PONG".into()));
    let s = store(&rec);
    s.pending("bob").await.unwrap();
    assert_eq!(s.list_users(100).await.unwrap(), ["alice"]);
    s.ping().await.unwrap();
    let sent = rec.sent();
    assert_eq!(sent[0][..2], ["XRANGE", "chat:{u:bob}:inbox"]);
    assert_eq!(sent[1], ["ZRANGE", "chat:online", "0", "99"]);
    assert_eq!(sent[2], ["PING"]);
}

#[tokio::test]
async fn redis_errors_become_store_errors() {
    #[derive(Clone)]
    struct Down;
    impl ConnectionLike for Down {
        fn req_packed_command<'a>(&'a mut self, _: &'a Cmd) -> RedisFuture<'a, Value> {
            Box::pin(async {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                )))
            })
        }
        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            Box::pin(async { Ok(vec![]) })
        }
        fn get_db(&self) -> i64 {
            0
        }
    }
    impl super::Sharded for Down {}
    let s = Store::new(
        Down,
        "chat:",
        "w",
        Duration::from_secs(1),
        InboxBounds {
            max_len: 1,
            ttl: Duration::from_secs(1),
        },
    );
    assert!(s.send("a", "b", "c", 1).await.is_err());
    // A failed batch fails every message in it: each sender hears `unavailable`.
    let batch: Vec<Outgoing> = ["b", "c", "d"]
        .iter()
        .map(|to| Outgoing {
            from: "a".into(),
            to: (*to).into(),
            text: "t".into(),
            sent_at: 1,
        })
        .collect();
    let outcomes = s.send_many(&batch).await;
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(Result::is_err));
}

#[test]
fn scripts_do_not_spell_key_names() {
    // Key names live in `keys`; a script that templates its own would drift from them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/scripts");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let lua = std::fs::read_to_string(&path).unwrap();
        let code: String = lua
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        for spelled in [
            "'w:'", "'u:'", "'r:'", ":workers", ":users", ":deliver", "chat:",
        ] {
            assert!(!code.contains(spelled), "{path:?} spells {spelled}");
        }
    }
}
