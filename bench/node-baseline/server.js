// The seed's design, for side-by-side benchmarks: one Node.js process per worker port,
// socket.io 4 with @socket.io/redis-adapter (every broadcast goes through Redis pub/sub to every
// process, which filters by room locally), HAProxy in front. It speaks SPEC §3:
//
//   log in        {"username"}            -> {"ok":true,"username","pending":N}, then the N
//                                            messages of the user's inbox, oldest first
//   send message  {"username":TO,"message"} -> {"ok":true,"id"} after XADD to TO's inbox
//   join room / leave room / room message / list users (minimal, same ack shapes)
//   new message   {"id","from","message","sentAt"} emitted to room "user:TO" WITH an ack
//                 request (through the adapter's broadcastWithAck); the first client ack
//                 XDELs the inbox entry and emits `delivered` {"id","to"} to room "user:FROM".
//
// Simplifications (documented in bench/README.md): no rate limit, no auth, no inbox TTL, the
// online set is not reaped when a process dies, no redelivery on reconnect other than at
// `log in`. GET /health answers 200 while the Redis clients are ready, 503 otherwise.
//
// Usage: PORT=30001 REDIS_URL=redis://127.0.0.1:6390 node server.js

"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT || process.argv[2] || 30001);
const host = process.env.HOST || "127.0.0.1";
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const P = process.env.REDIS_PREFIX || "nodechat:";
const MAX_BYTES = 16384;
const INBOX_MAX = 1000;
const ACK_TIMEOUT_MS = 30000;
const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;

const pubClient = createClient({ url: redisUrl });
const subClient = pubClient.duplicate();
const db = pubClient.duplicate();
for (const c of [pubClient, subClient, db]) c.on("error", (e) => console.error("redis:", e.message));

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    const up = pubClient.isReady && subClient.isReady && db.isReady;
    res.writeHead(up ? 200 : 503, { "content-type": "text/plain" });
    res.end(up ? "ok\n" : "redis down\n");
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(server, { serveClient: false, maxHttpBufferSize: 1e6 });

const fail = (code, message) => ({ ok: false, error: { code, message } });

function reply(socket, event, ack, value) {
  if (typeof ack === "function") ack(value);
  else if (!value.ok) socket.emit("chat error", { ...value.error, event });
}

function entryToMessage(id, fields) {
  return { id, from: fields.from, message: fields.message, sentAt: Number(fields.sentAt) };
}

// Emits a direct message to every socket of `to` (on any process) and asks for an ack.
function deliver(to, msg) {
  io.to("user:" + to)
    .timeout(ACK_TIMEOUT_MS)
    .emit("new message", msg, async (_err, responses) => {
      if (!responses || responses.length === 0) return; // stays in the inbox
      try {
        const removed = await db.xDel(P + "u:" + to + ":inbox", msg.id);
        if (removed > 0) io.to("user:" + msg.from).emit("delivered", { id: msg.id, to });
      } catch (e) {
        console.error("ack:", e.message);
      }
    });
}

io.on("connection", (socket) => {
  socket.on("log in", async (data, ack) => {
    const username = data && data.username;
    if (typeof username !== "string" || !USER_RE.test(username)) {
      return reply(socket, "log in", ack, fail("invalid_username", "bad username"));
    }
    try {
      if (socket.data.username && socket.data.username !== username) {
        socket.leave("user:" + socket.data.username);
      }
      socket.data.username = username;
      socket.join("user:" + username);
      const [, pending] = await Promise.all([
        db.zAdd(P + "online", { score: 0, value: username }),
        db.xRange(P + "u:" + username + ":inbox", "-", "+", { COUNT: INBOX_MAX }),
      ]);
      reply(socket, "log in", ack, { ok: true, username, pending: pending.length });
      for (const e of pending) {
        const msg = entryToMessage(e.id, e.message);
        socket.timeout(ACK_TIMEOUT_MS).emit("new message", msg, async (err) => {
          if (err) return;
          const removed = await db.xDel(P + "u:" + username + ":inbox", msg.id).catch(() => 0);
          if (removed > 0) io.to("user:" + msg.from).emit("delivered", { id: msg.id, to: username });
        });
      }
    } catch (e) {
      reply(socket, "log in", ack, fail("unavailable", e.message));
    }
  });

  socket.on("send message", async (data, ack) => {
    const from = socket.data.username;
    if (!from) return reply(socket, "send message", ack, fail("not_logged_in", "log in first"));
    const to = data && data.username;
    const text = data && data.message;
    if (typeof to !== "string" || !USER_RE.test(to)) {
      return reply(socket, "send message", ack, fail("invalid_username", "bad recipient"));
    }
    if (typeof text !== "string" || text.length === 0) {
      return reply(socket, "send message", ack, fail("bad_request", "message must be a non-empty string"));
    }
    if (Buffer.byteLength(text) > MAX_BYTES) {
      return reply(socket, "send message", ack, fail("message_too_large", "message too large"));
    }
    const sentAt = Date.now();
    try {
      const id = await db.xAdd(
        P + "u:" + to + ":inbox",
        "*",
        { from, message: text, sentAt: String(sentAt) },
        { TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: INBOX_MAX } },
      );
      reply(socket, "send message", ack, { ok: true, id });
      deliver(to, { id, from, message: text, sentAt });
    } catch (e) {
      reply(socket, "send message", ack, fail("unavailable", e.message));
    }
  });

  socket.on("join room", async (data, ack) => {
    if (!socket.data.username) return reply(socket, "join room", ack, fail("not_logged_in", "log in first"));
    const room = data && data.room;
    if (typeof room !== "string" || !ROOM_RE.test(room)) {
      return reply(socket, "join room", ack, fail("invalid_room", "bad room"));
    }
    socket.join("room:" + room);
    try {
      const h = await db.xRange(P + "r:" + room + ":history", "-", "+");
      const history = h.map((e) => ({ ...entryToMessage(e.id, e.message), room }));
      reply(socket, "join room", ack, { ok: true, history });
    } catch (e) {
      reply(socket, "join room", ack, fail("unavailable", e.message));
    }
  });

  socket.on("leave room", (data, ack) => {
    const room = data && data.room;
    if (typeof room !== "string" || !ROOM_RE.test(room)) {
      return reply(socket, "leave room", ack, fail("invalid_room", "bad room"));
    }
    socket.leave("room:" + room);
    reply(socket, "leave room", ack, { ok: true });
  });

  socket.on("room message", async (data, ack) => {
    const from = socket.data.username;
    if (!from) return reply(socket, "room message", ack, fail("not_logged_in", "log in first"));
    const room = data && data.room;
    const text = data && data.message;
    if (typeof room !== "string" || !ROOM_RE.test(room) || !socket.rooms.has("room:" + room)) {
      return reply(socket, "room message", ack, fail("bad_request", "join the room first"));
    }
    if (typeof text !== "string" || text.length === 0 || Buffer.byteLength(text) > MAX_BYTES) {
      return reply(socket, "room message", ack, fail("bad_request", "bad message"));
    }
    const sentAt = Date.now();
    try {
      const id = await db.xAdd(
        P + "r:" + room + ":history",
        "*",
        { from, message: text, sentAt: String(sentAt) },
        { TRIM: { strategy: "MAXLEN", threshold: 50 } },
      );
      reply(socket, "room message", ack, { ok: true, id });
      socket.to("room:" + room).emit("new message", { id, from, message: text, sentAt, room });
    } catch (e) {
      reply(socket, "room message", ack, fail("unavailable", e.message));
    }
  });

  socket.on("list users", async (_data, ack) => {
    if (!socket.data.username) return reply(socket, "list users", ack, fail("not_logged_in", "log in first"));
    try {
      const users = await db.zRange(P + "online", 0, 999);
      reply(socket, "list users", ack, { ok: true, users });
    } catch (e) {
      reply(socket, "list users", ack, fail("unavailable", e.message));
    }
  });

  socket.on("disconnect", () => {
    const u = socket.data.username;
    // Only this process's sockets are known locally; the seed's design has no global count.
    if (u && !io.of("/").adapter.rooms.has("user:" + u)) {
      db.zRem(P + "online", u).catch(() => {});
    }
  });
});

async function main() {
  await Promise.all([pubClient.connect(), subClient.connect(), db.connect()]);
  io.adapter(createAdapter(pubClient, subClient));
  server.listen(port, host, () => console.log(`node-baseline listening on ${host}:${port}`));
}

function shutdown() {
  io.close();
  Promise.allSettled([pubClient.quit(), subClient.quit(), db.quit()]).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

main().catch((e) => {
  console.error("node-baseline:", e.message);
  process.exit(1);
});
