//! The formats the store reads and writes: [`Delivery`], the payload on a worker's channel
//! (encoder and decoder), and stream entries as XRANGE returns them.
//!
//! A payload is a kind letter and `\n`-separated fields, the message text last (it may
//! contain newlines; no other field can, since names are restricted by the protocol):
//! `m\nTO\nID\nFROM\nSENT_AT\nTEXT`, `r\nROOM\nID\nFROM\nSENT_AT\nEXCEPT_SID\nTEXT`,
//! `d\nSENDER\nID\nTO`. Receipts have no text, so one payload may carry several:
//! `d\nSENDER\nID\nTO\nSENDER\nID\nTO…` ([`Delivery::Receipts`]); the batched ack script
//! publishes one such payload per worker instance ([`RECEIPTS_HEAD`], [`RECEIPT_SEP`]). The id is always the third field: the send scripts learn it from
//! XADD, so they are handed the payload around it ([`Delivery::parts`]) and never spell the
//! format themselves.

use crate::protocol::NewMessage;

/// One message a worker's channel carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A direct message for `to`'s sockets on this worker.
    Direct { to: String, message: NewMessage },
    /// A room message for this worker's members of `message.room`, except socket `except_sid`.
    Room {
        except_sid: String,
        message: NewMessage,
    },
    /// `to` acknowledged message `id` from `sender`: tell `sender`'s sockets.
    Delivered {
        sender: String,
        id: String,
        to: String,
    },
    /// Several receipts in one payload, in order: `(sender, id, to)` each.
    Receipts(Vec<(String, String, String)>),
    /// Several deliveries in one payload, in order (never batches themselves).
    Batch(Vec<Delivery>),
}

/// A batch payload is this head, then for each delivery its payload's length in bytes,
/// [`BATCH_SEP`] and the payload.
pub const BATCH_HEAD: &str = "b\n";
/// What ends the length of each payload in a batch.
pub const BATCH_SEP: &str = "\n";

/// The payload of a direct message around its id (see [`Parts`]), without building a
/// [`Delivery`] (which would copy the text).
pub fn direct_parts(to: &str, from: &str, sent_at: u64) -> (String, String) {
    let mut n = itoa::Buffer::new();
    (
        ["m\n", to, "\n"].concat(),
        ["\n", from, "\n", n.format(sent_at), "\n"].concat(),
    )
}

/// A receipts payload is this head, then each receipt's record ([`receipt_record`]), joined
/// by [`RECEIPT_SEP`].
pub const RECEIPTS_HEAD: &str = "d";
/// What separates the head and records of a receipts payload.
pub const RECEIPT_SEP: &str = "\n";

/// One receipt's part of a receipts payload: `SENDER\nID\nTO`.
pub fn receipt_record(sender: &str, id: &str, to: &str) -> String {
    [sender, RECEIPT_SEP, id, RECEIPT_SEP, to].concat()
}

/// A payload split around its id: `head + id + middle + text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    pub head: String,
    pub middle: String,
    /// The message text (empty for a receipt); scripts already have it as an argument.
    pub text: &'a str,
}

impl Parts<'_> {
    /// The whole payload with `id` in its place.
    pub fn around(&self, id: &str) -> String {
        [self.head.as_str(), id, &self.middle, self.text].concat()
    }
}

impl Delivery {
    /// The channel payload, as the scripts publish it.
    pub fn encode(&self) -> String {
        self.parts().around(self.id())
    }

    /// The message id this delivery carries (none for a batch: each part has its own).
    pub fn id(&self) -> &str {
        match self {
            Delivery::Direct { message, .. } | Delivery::Room { message, .. } => &message.id,
            Delivery::Delivered { id, .. } => id,
            // Each part carries its own id, already in the payload's head.
            Delivery::Receipts(_) | Delivery::Batch(_) => "",
        }
    }

    /// The payload without its id (which is ignored here): what a script needs to publish
    /// the delivery of a message whose id it is about to create.
    ///
    /// Built by concatenation, not `format!`: one of these is made per message sent.
    pub fn parts(&self) -> Parts<'_> {
        let mut sent_at = itoa::Buffer::new();
        match self {
            Delivery::Direct { to, message } => {
                let (head, middle) = direct_parts(to, &message.from, message.sent_at);
                Parts {
                    head,
                    middle,
                    text: &message.message,
                }
            }
            Delivery::Room {
                except_sid,
                message,
            } => Parts {
                head: ["r\n", message.room.as_deref().unwrap_or_default(), "\n"].concat(),
                middle: [
                    "\n",
                    &message.from,
                    "\n",
                    sent_at.format(message.sent_at),
                    "\n",
                    except_sid,
                    "\n",
                ]
                .concat(),
                text: &message.message,
            },
            Delivery::Delivered { sender, to, .. } => Parts {
                head: [RECEIPTS_HEAD, RECEIPT_SEP, sender, RECEIPT_SEP].concat(),
                middle: [RECEIPT_SEP, to].concat(),
                text: "",
            },
            Delivery::Receipts(receipts) => {
                let records: Vec<String> = receipts
                    .iter()
                    .map(|(s, id, to)| receipt_record(s, id, to))
                    .collect();
                Parts {
                    head: [RECEIPTS_HEAD, RECEIPT_SEP, &records.join(RECEIPT_SEP)].concat(),
                    middle: String::new(),
                    text: "",
                }
            }
            Delivery::Batch(batch) => {
                let mut head = BATCH_HEAD.to_owned();
                for d in batch {
                    let payload = d.encode();
                    head.push_str(itoa::Buffer::new().format(payload.len()));
                    head.push_str(BATCH_SEP);
                    head.push_str(&payload);
                }
                Parts {
                    head,
                    middle: String::new(),
                    text: "",
                }
            }
        }
    }

    /// The deliveries a batch payload carries: `rest` is what follows [`BATCH_HEAD`].
    fn parse_batch(mut rest: &str) -> Option<Delivery> {
        let mut batch = Vec::new();
        while !rest.is_empty() {
            let (len, after) = rest.split_once(BATCH_SEP)?;
            let len: usize = len.parse().ok()?;
            let payload = after.get(..len)?;
            match Delivery::parse(payload)? {
                Delivery::Batch(_) => return None,
                d => batch.push(d),
            }
            rest = &after[len..];
        }
        (!batch.is_empty()).then_some(Delivery::Batch(batch))
    }

    /// Parses a channel payload; `None` when it is not one [`Delivery::encode`] makes.
    pub fn parse(payload: &str) -> Option<Delivery> {
        if let Some(rest) = payload.strip_prefix(BATCH_HEAD) {
            return Self::parse_batch(rest);
        }
        let (kind, rest) = payload.split_once('\n')?;
        match kind {
            "m" => {
                let mut f = rest.splitn(5, '\n');
                let to = f.next()?.to_owned();
                let message = NewMessage {
                    id: f.next()?.to_owned(),
                    from: f.next()?.to_owned(),
                    sent_at: f.next()?.parse().ok()?,
                    message: f.next()?.to_owned(),
                    room: None,
                };
                Some(Delivery::Direct { to, message })
            }
            "r" => {
                let mut f = rest.splitn(6, '\n');
                let room = Some(f.next()?.to_owned());
                let id = f.next()?.to_owned();
                let from = f.next()?.to_owned();
                let sent_at = f.next()?.parse().ok()?;
                let except_sid = f.next()?.to_owned();
                let message = NewMessage {
                    id,
                    from,
                    sent_at,
                    message: f.next()?.to_owned(),
                    room,
                };
                Some(Delivery::Room {
                    except_sid,
                    message,
                })
            }
            "d" => {
                let fields: Vec<&str> = rest.split('\n').collect();
                if fields.is_empty() || !fields.len().is_multiple_of(3) {
                    return None;
                }
                let mut receipts: Vec<(String, String, String)> = fields
                    .chunks_exact(3)
                    .map(|r| (r[0].to_owned(), r[1].to_owned(), r[2].to_owned()))
                    .collect();
                if receipts.len() > 1 {
                    return Some(Delivery::Receipts(receipts));
                }
                let (sender, id, to) = receipts.pop()?;
                Some(Delivery::Delivered { sender, id, to })
            }
            _ => None,
        }
    }
}

/// A raw stream entry as XRANGE returns it: id and a flat field/value list.
pub(super) type RawEntry = (String, Vec<String>);

/// A stream entry as `deliver.lua`'s `append` writes it; `None` when a field is missing.
pub(super) fn entry_to_message(entry: RawEntry, room: Option<&str>) -> Option<NewMessage> {
    let (id, fields) = entry;
    let (mut from, mut message, mut sent_at) = (None, None, None);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match k.as_str() {
            "from" => from = Some(v),
            "message" => message = Some(v),
            "sentAt" => sent_at = v.parse().ok(),
            _ => {}
        }
    }
    Some(NewMessage {
        id,
        from: from?,
        message: message?,
        sent_at: sent_at?,
        room: room.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, text: &str, room: Option<&str>) -> NewMessage {
        NewMessage {
            id: id.into(),
            from: "alice".into(),
            message: text.into(),
            sent_at: 42,
            room: room.map(Into::into),
        }
    }

    #[test]
    fn channel_payloads_parse() {
        let d = Delivery::parse("m\nbob\n5-0\nalice\n42\nhello\nworld").unwrap();
        assert_eq!(
            d,
            Delivery::Direct {
                to: "bob".into(),
                message: msg("5-0", "hello\nworld", None),
            }
        );
        match Delivery::parse("r\nlobby\n1-0\nalice\n9\nSID\ntext").unwrap() {
            Delivery::Room {
                except_sid,
                message,
            } => {
                assert_eq!(except_sid, "SID");
                assert_eq!(message.room.as_deref(), Some("lobby"));
                assert_eq!(message.message, "text");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Delivery::parse("d\nalice\n5-0\nbob"),
            Some(Delivery::Delivered {
                sender: "alice".into(),
                id: "5-0".into(),
                to: "bob".into()
            })
        );
        assert_eq!(
            Delivery::parse("d\nalice\n5-0\nbob\ncarol\n6-0\nbob"),
            Some(Delivery::Receipts(vec![
                ("alice".into(), "5-0".into(), "bob".into()),
                ("carol".into(), "6-0".into(), "bob".into()),
            ]))
        );
        assert_eq!(Delivery::parse("d\nalice\n5-0\nbob\ncarol"), None);
        let one = "m\nbob\n5-0\nalice\n42\nhello\nworld";
        let two = "m\ncarol\n6-0\nalice\n43\n";
        assert_eq!(
            Delivery::parse(&format!("b\n{}\n{one}{}\n{two}", one.len(), two.len())),
            Some(Delivery::Batch(vec![
                Delivery::parse(one).unwrap(),
                Delivery::parse(two).unwrap()
            ]))
        );
        assert_eq!(
            Delivery::parse("b\n99\nm\nbob"),
            None,
            "length past the end"
        );
        assert_eq!(Delivery::parse("b\n"), None, "empty batch");
        assert_eq!(Delivery::parse("b\n5\nb\n0\n"), None, "nested batch");
        assert_eq!(Delivery::parse("m\nbob\n5-0"), None);
        assert_eq!(Delivery::parse("x\n"), None);
    }

    #[test]
    fn encoding_is_the_wire_format_and_parses_back() {
        let cases = [
            (
                Delivery::Direct {
                    to: "bob".into(),
                    message: msg("5-0", "hello\nworld", None),
                },
                "m\nbob\n5-0\nalice\n42\nhello\nworld",
            ),
            (
                Delivery::Room {
                    except_sid: "SID".into(),
                    message: msg("1-0", "text", Some("lobby")),
                },
                "r\nlobby\n1-0\nalice\n42\nSID\ntext",
            ),
            (
                Delivery::Delivered {
                    sender: "alice".into(),
                    id: "5-0".into(),
                    to: "bob".into(),
                },
                "d\nalice\n5-0\nbob",
            ),
            (
                Delivery::Receipts(vec![
                    ("alice".into(), "5-0".into(), "bob".into()),
                    ("carol".into(), "6-0".into(), "bob".into()),
                ]),
                "d\nalice\n5-0\nbob\ncarol\n6-0\nbob",
            ),
            (
                Delivery::Batch(vec![
                    Delivery::Direct {
                        to: "bob".into(),
                        message: msg("5-0", "hi\n3\n", None),
                    },
                    Delivery::Room {
                        except_sid: "SID".into(),
                        message: msg("1-0", "text", Some("lobby")),
                    },
                ]),
                "b\n24\nm\nbob\n5-0\nalice\n42\nhi\n3\n29\nr\nlobby\n1-0\nalice\n42\nSID\ntext",
            ),
        ];
        for (d, wire) in cases {
            assert_eq!(d.encode(), wire);
            assert_eq!(Delivery::parse(wire), Some(d));
        }
    }

    #[test]
    fn parts_surround_the_id() {
        let d = Delivery::Direct {
            to: "bob".into(),
            message: msg("", "hi", None),
        };
        let p = d.parts();
        assert_eq!(
            (p.head.as_str(), p.middle.as_str(), p.text),
            ("m\nbob\n", "\nalice\n42\n", "hi")
        );
    }
}
