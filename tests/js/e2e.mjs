// End-to-end check with the official socket.io-client against two chat workers (or one
// HAProxy URL given twice). Usage: node e2e.mjs URL_A URL_B websocket|polling
// Prints one JSON line with what it saw; exits 0 only when every step passed.
import { io } from "socket.io-client";

const [urlA, urlB, transport] = process.argv.slice(2);
if (!urlA || !urlB || !["websocket", "polling"].includes(transport)) {
  console.error("usage: node e2e.mjs URL_A URL_B websocket|polling");
  process.exit(2);
}

const deadline = setTimeout(() => {
  console.error(JSON.stringify({ ok: false, error: "timed out after 20 s" }));
  process.exit(1);
}, 20000);

function connect(url) {
  // withCredentials keeps cookies under Node, so HAProxy's stickiness cookie works over polling.
  const socket = io(url, { transports: [transport], withCredentials: true, reconnection: false });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => reject(new Error(`connect ${url}: ${e.message}`)));
  });
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

const suffix = `${process.pid}${transport[0]}`;
const alice = `alice${suffix}`, bob = `bob${suffix}`;

try {
  const a = await connect(urlA);
  const b = await connect(urlB);
  expect(a.io.engine.transport.name === transport, `alice transport ${a.io.engine.transport.name}`);

  const la = await a.timeout(5000).emitWithAck("log in", { username: alice });
  expect(la.ok && la.username === alice && la.pending === 0, `alice log in ${JSON.stringify(la)}`);
  const lb = await b.timeout(5000).emitWithAck("log in", { username: bob });
  expect(lb.ok, `bob log in ${JSON.stringify(lb)}`);

  const received = new Promise((resolve) => {
    b.on("new message", (msg, ack) => {
      if (msg.room) return;
      expect(typeof ack === "function", "direct message asks for an ack");
      ack({});
      resolve(msg);
    });
  });
  const delivered = new Promise((resolve) => a.on("delivered", resolve));
  const sent = await a.timeout(5000).emitWithAck("send message", { username: bob, message: "hi from node" });
  expect(sent.ok && typeof sent.id === "string", `send ${JSON.stringify(sent)}`);
  const msg = await received;
  expect(msg.id === sent.id && msg.from === alice && msg.message === "hi from node", `got ${JSON.stringify(msg)}`);
  const receipt = await delivered;
  expect(receipt.id === sent.id && receipt.to === bob, `receipt ${JSON.stringify(receipt)}`);

  const room = `room${suffix}`;
  const ja = await a.timeout(5000).emitWithAck("join room", { room });
  const jb = await b.timeout(5000).emitWithAck("join room", { room });
  expect(ja.ok && jb.ok && Array.isArray(jb.history), "join room");
  const roomMsg = new Promise((resolve) => b.on("new message", (m) => m.room === room && resolve(m)));
  const rs = await a.timeout(5000).emitWithAck("room message", { room, message: "hi room" });
  expect(rs.ok, `room message ${JSON.stringify(rs)}`);
  const rm = await roomMsg;
  expect(rm.message === "hi room" && rm.from === alice, `room got ${JSON.stringify(rm)}`);

  const users = await a.timeout(5000).emitWithAck("list users", {});
  expect(users.ok && users.users.includes(alice) && users.users.includes(bob), `users ${JSON.stringify(users)}`);

  const errorEvent = new Promise((resolve) => a.on("chat error", resolve));
  a.emit("send message", { username: "not valid!", message: "x" });
  const err = await errorEvent;
  expect(err.code === "invalid_username" && err.event === "send message", `chat error ${JSON.stringify(err)}`);

  a.close();
  b.close();
  clearTimeout(deadline);
  console.log(JSON.stringify({ ok: true, transport, id: sent.id }));
  process.exit(0);
} catch (e) {
  console.error(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }));
  process.exit(1);
}
